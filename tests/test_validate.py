"""pygan._validate: the shared argument checks and their one message style."""

import math
import warnings

import pytest
import torch

from pygan import _validate as check

np = pytest.importorskip("numpy")


@pytest.mark.parametrize("value, want", [(3, 3.0), (2.5, 2.5), (np.float32(1.5), 1.5), (np.int64(4), 4.0),
                                         (np.array(0.25), 0.25), (torch.tensor(2.0), 2.0),
                                         (torch.tensor([7], dtype=torch.int32), 7.0)])
def test_real_accepts_numbers_numpy_scalars_and_one_element_tensors(value, want):
    got = check.real(value, "x", "f")
    assert type(got) is float and got == want


@pytest.mark.parametrize("value", [True, np.bool_(False), "1", None, 1j, torch.ones(2), torch.tensor(True),
                                   torch.tensor(1 + 1j), [1.0]])
def test_real_refuses_bools_strings_and_the_rest(value):
    with pytest.raises(TypeError, match=r"^f: x must be a real number, got "):
        check.real(value, "x", "f")


def test_number_ranges_and_messages():
    assert check.number(0, "lr", "opt", low=0) == 0.0
    assert check.number(None, "clip", "opt", low=0, low_open=True, allow_none=True) is None
    cases = [
        (dict(value=-1.0, low=0), "opt: lr must be a finite number >= 0, got -1.0"),
        (dict(value=0.0, low=0, low_open=True), "opt: lr must be a finite number > 0, got 0.0"),
        (dict(value=2.0, low=0, high=1), "opt: lr must be a finite number >= 0 and <= 1, got 2.0"),
        (dict(value=1.0, high=1, high_open=True), "opt: lr must be a finite number < 1, got 1.0"),
        (dict(value=math.nan), "opt: lr must be a finite number, got nan"),
        (dict(value=math.inf, low=0, allow_none=True), "opt: lr must be a finite number >= 0, or None, got inf"),
    ]
    for kwargs, message in cases:
        value = kwargs.pop("value")
        with pytest.raises(ValueError) as info:
            check.number(value, "lr", "opt", **kwargs)
        assert str(info.value) == message
    with pytest.raises(ValueError, match=r"^--lr must be"):  # a command line: no function name
        check.number(-1, "--lr", low=0)


def test_integer_boolean_choice():
    assert check.integer(np.int32(3), "n", "f", low=1) == 3
    for bad in (True, 2.0, "2", None):
        with pytest.raises(TypeError, match="f: n must be an int, got"):
            check.integer(bad, "n", "f")
    with pytest.raises(ValueError, match=r"f: n must be an int >= 1, got 0"):
        check.integer(0, "n", "f", low=1)
    assert check.boolean(np.bool_(True), "b", "f") is True
    with pytest.raises(TypeError, match="f: b must be True or False, got int"):
        check.boolean(1, "b", "f")
    assert check.choice("sum", "reduction", ("none", "mean", "sum"), "f") == "sum"
    with pytest.raises(ValueError, match=r"f: reduction must be 'none', 'mean' or 'sum', got 'avg'"):
        check.choice("avg", "reduction", ("none", "mean", "sum"), "f")
    with pytest.raises(TypeError, match="f: reduction must be a str, got NoneType"):
        check.choice(None, "reduction", ("none",), "f")


def test_generator_and_callable():
    g = torch.Generator()
    assert check.generator(g, where="f") is g and check.generator(None) is None
    with pytest.raises(TypeError, match=r"f: generator must be a torch.Generator or None, got int .*manual_seed"):
        check.generator(5, where="f")
    with pytest.raises(TypeError, match="f: critic must be callable, got str"):
        check.callable_("x", "critic", "f")


def test_tensor_checks_use_the_kernels_wording():
    t = torch.randn(2, 3)
    assert check.tensor(t, "x", "f", min_dim=1) is t
    with pytest.raises(TypeError, match="f: x must be a torch.Tensor, got list"):
        check.tensor([1.0], "x", "f")
    with pytest.raises(TypeError, match="f: x has dtype torch.int64; expected float16, bfloat16, float32 or float64"):
        check.tensor(torch.ones(2, dtype=torch.long), "x", "f")
    with pytest.raises(TypeError, match="f: x has layout torch.sparse_coo; expected a dense"):
        check.tensor(t.to_sparse(), "x", "f")
    with pytest.raises(ValueError, match=r"f: x is 0-d; expected a batch"):
        check.tensor(torch.tensor(1.0), "x", "f", min_dim=1)
    with pytest.raises(ValueError, match="f: x is on the meta device"):
        check.tensor(torch.empty(2, device="meta"), "x", "f", allow_meta=False)


def test_same_device_refuses_meta_mixed_with_data_only():
    meta, cpu = torch.empty(2, device="meta"), torch.empty(2)
    check.same_device([("a", meta), ("b", meta)], "f")
    check.same_device([("a", cpu), ("b", cpu)], "f")
    with pytest.raises(ValueError, match="f: b is on the meta device but a is on cpu"):
        check.same_device([("a", cpu), ("b", meta)], "f")


def test_no_shared_memory():
    buf = torch.zeros(10)
    a, b = buf[:5], buf[5:]
    check.no_shared_memory([("a", a), ("b", b)], where="f")             # disjoint views of one buffer
    check.no_shared_memory([("w", torch.zeros(3))], [("r1", buf), ("r2", buf)], "f")  # readers may share
    check.no_shared_memory([("w", torch.empty(0)), ("v", torch.empty(0))], where="f")  # empty: no memory
    with pytest.raises(ValueError, match="f: b shares memory with a"):
        check.no_shared_memory([("a", buf), ("b", buf[3:4])], where="f")
    with pytest.raises(ValueError, match="f: r shares memory with w"):
        check.no_shared_memory([("w", a)], [("r", buf[4:6])], "f")
    with pytest.raises(ValueError, match="shares memory"):  # a transposed view: same bytes
        m = torch.zeros(3, 4)
        check.no_shared_memory([("m", m), ("t", m.t())], where="f")


def test_existing_file(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("1")
    assert check.existing_file(str(f), "path", "f") == f
    assert check.existing_file(tmp_path, "out", "f", directory=True) == tmp_path
    with pytest.raises(ValueError, match=r"f: path must be an existing file, got '.*nope' \(no such file\)"):
        check.existing_file(tmp_path / "nope", "path", "f")
    with pytest.raises(ValueError, match=r"\(a directory\)"):
        check.existing_file(tmp_path, "path", "f")
    with pytest.raises(TypeError, match="f: path must be a path"):
        check.existing_file(3, "path", "f")


def test_deprecated_positional():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check.deprecated_positional((), {"c": None}, "f", {"c": 2}) == {"c": 2}
    with pytest.warns(DeprecationWarning, match=r"f: passing c by position is deprecated .* pass c=\.\.\. by keyword"):
        assert check.deprecated_positional((1,), {"c": None, "d": 1.0}, "f", {"c": None, "d": 3.0}) == {"c": 1, "d": 3.0}
    with pytest.raises(TypeError, match="f: got c both by position and by keyword"):
        check.deprecated_positional((1,), {"c": None}, "f", {"c": 2})
    with pytest.raises(TypeError, match="at most 1"):
        check.deprecated_positional((1, 2), {"c": None}, "f", {"c": None})


def test_renamed_keywords():
    @check.renamed_keywords("f", old="new")
    def f(a, new, *, c=1):
        return a, new, c

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1, 2) == (1, 2, 1)            # positional: no warning
        assert f(1, new=2, c=3) == (1, 2, 3)   # the new keyword: no warning
    with pytest.warns(DeprecationWarning, match=r"f: the keyword old= is deprecated .* pass new="):
        assert f(1, old=2) == (1, 2, 1)
    with pytest.raises(TypeError, match="f: got new both as new and as the deprecated old"):
        f(1, new=2, old=3)
    with pytest.raises(TypeError, match="f: got new both"):
        f(1, 2, old=3)                          # the new one by position
    assert list(__import__("inspect").signature(f).parameters) == ["a", "new", "c"]
    with pytest.raises(AssertionError, match="no parameter"):
        check.renamed_keywords("g", old="missing")(f.__wrapped__)


def test_the_trainers_checks_are_the_shared_ones():
    from pygan.train.config import check_int, check_nonnegative

    assert check_int(3, "steps", 0) == 3 and check_nonnegative(2, "lr") == 2.0
    assert type(check_nonnegative(np.float32(0.5), "lr")) is float
    with pytest.raises(ValueError, match=r"^n_critic must be an int >= 1, got 0$"):
        check_int(0, "n_critic", 1)
    with pytest.raises(TypeError, match=r"^n_critic must be an int, got bool$"):
        check_int(True, "n_critic", 1)
    with pytest.raises(TypeError, match=r"^n_critic must be an int, got float$"):
        check_int(2.0, "n_critic", 1)
    with pytest.raises(ValueError, match=r"^penalty_weight must be a finite number >= 0, got -1\.0$"):
        check_nonnegative(-1, "penalty_weight")
    with pytest.raises(ValueError, match=r"^penalty_weight must be a finite number >= 0, got nan$"):
        check_nonnegative(math.nan, "penalty_weight")
    with pytest.raises(TypeError, match=r"^penalty_weight must be a real number, got str$"):
        check_nonnegative("1", "penalty_weight")
