"""The networks' parameters of Trainer and TrainStep are G and D (``generator=`` is a torch.Generator
everywhere else in pygan); the old keywords generator= and critic= still work for one release."""

import inspect
import warnings

import pytest

from pygan.train import Trainer
from pygan.train.step import TrainStep
from train_fixtures import twin_setup

KW = dict(progress=False, plots=False)


@pytest.mark.parametrize("cls", [Trainer, TrainStep])
def test_the_networks_are_g_and_d(cls):
    assert list(inspect.signature(cls.__init__).parameters)[1:3] == ["G", "D"]
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    extra = KW if cls is Trainer else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_position = cls(G, D, g_opt, d_opt, [], seed=1, **extra)
        by_keyword = cls(G=G, D=D, g_optimizer=g_opt, d_optimizer=d_opt, data=[], seed=1, **extra)
    for t in (by_position, by_keyword):
        assert t.G is G and t.D is D


@pytest.mark.parametrize("cls", [Trainer, TrainStep])
def test_the_old_keywords_warn_and_still_work(cls):
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    extra = KW if cls is Trainer else {}
    with pytest.warns(DeprecationWarning) as record:
        t = cls(generator=G, critic=D, g_optimizer=g_opt, d_optimizer=d_opt, data=[], **extra)
    assert t.G is G and t.D is D
    messages = sorted(str(w.message) for w in record if issubclass(w.category, DeprecationWarning))
    assert len(messages) == 2  # one warning each, from the class called (not again from TrainStep)
    assert messages[0].startswith(f"{cls.__name__}: the keyword critic= is deprecated") and "pass D=" in messages[0]
    assert messages[1].startswith(f"{cls.__name__}: the keyword generator= is deprecated") and "pass G=" in messages[1]


@pytest.mark.parametrize("cls", [Trainer, TrainStep])
@pytest.mark.parametrize("how", ["keyword", "position"])
def test_both_names_at_once_is_a_type_error(cls, how):
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    with pytest.raises(TypeError, match="got G both as G and as the deprecated generator"):
        if how == "keyword":
            cls(G=G, generator=G, D=D, g_optimizer=g_opt, d_optimizer=d_opt, data=[])
        else:
            cls(G, D, g_opt, d_opt, [], generator=G)
    with pytest.raises(TypeError, match="got D both as D and as the deprecated critic"):
        cls(G, D, g_opt, d_opt, [], critic=D)
