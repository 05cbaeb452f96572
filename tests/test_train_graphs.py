"""CUDA graphs for the trainer step: the option's refusals (testable on any machine) and, on a GPU,
captured steps against eager ones.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from pygan.train import Trainer
from pygan.train.data import ToySampler
from pygan.train.graphs import WARMUP_STEPS, unsupported
from train_fixtures import real_batches, run_cli, tiny_args, twin_setup

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_cuda_graphs_on_the_cpu_are_refused_with_every_reason():
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    with pytest.raises(ValueError) as info:
        Trainer(G, D, g_opt, d_opt, [], loss="wgan-gp", lr_decay="linear", instance_noise=0.1, lazy_every=2,
                cuda_graphs=True)
    message = str(info.value)
    assert message.startswith("cuda_graphs:")
    for reason in ("CUDA device", "lr_decay", "instance noise", "lazy regularisation", "Adam is not capturable"):
        assert reason in message, reason
    Trainer(G, D, g_opt, d_opt, [], loss="wgan-gp", lr_decay="linear")  # without the option: fine


def test_unsupported_accepts_capturable_optimisers_and_refuses_data_parallelism():
    p = torch.zeros(3, requires_grad=True)
    capturable = torch.optim.Adam([p], capturable=True)
    reasons = unsupported(torch.device("cuda"), optimizers=(capturable, capturable))
    assert not any("capturable" in r for r in reasons)
    assert any("data parallelism" in r for r in unsupported(torch.device("cuda"), world=2))
    assert any("not capturable" in r for r in unsupported(torch.device("cuda"), optimizers=(torch.optim.Adam([p]),)))


def test_cli_cuda_graphs_without_cuda_is_exit_2(tmp_path, capsys):
    rc, err = run_cli(tiny_args(tmp_path / "run", "--cuda-graphs"), capsys)
    assert rc == 2 and "--cuda-graphs needs a CUDA device" in err
    assert not (tmp_path / "run").exists()


def _cuda_trainer(loss, cuda_graphs, seed=3):
    (G, D, _, _), _ = twin_setup(loss, seed=seed)
    G, D = G.cuda(), D.cuda()
    betas = (0.5, 0.9)
    g_opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=betas, capturable=True)
    d_opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=betas, capturable=True)
    data = ToySampler("8gaussians", 16, seed=1, device="cuda")
    return Trainer(G, D, g_opt, d_opt, data, loss=loss, n_critic=2, penalty_weight=10.0, seed=5, ema=0.9,
                   progress=False, plots=False, cuda_graphs=cuda_graphs)


@needs_cuda
@pytest.mark.parametrize("loss", ["wgan-gp", "wgan-gp-one-sided", "nsgan-r1", "wgan-fd", "nsgan"])
def test_captured_steps_equal_eager_steps(loss):
    """WARMUP_STEPS eager steps, then replays: the same parameters, EMA, losses and RNG state as a
    trainer that stays eager."""
    eager, graphed = _cuda_trainer(loss, False), _cuda_trainer(loss, True)
    for step in range(WARMUP_STEPS + 4):
        a, b = eager.train_step(), graphed.train_step()
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), step
    assert graphed.graphs.captured and graphed.critic_steps == eager.critic_steps
    for x, y in itertools.chain(zip(eager.G.parameters(), graphed.G.parameters()),
                                zip(eager.D.parameters(), graphed.D.parameters()),
                                zip(eager.G_ema.parameters(), graphed.G_ema.parameters())):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert torch.equal(eager.generator.get_state(), graphed.generator.get_state())


@needs_cuda
def test_captured_step_refuses_a_batch_of_another_shape():
    t = _cuda_trainer("wgan-gp", True)
    for _ in range(WARMUP_STEPS):
        t.train_step()
    t.data, t._data_iter = itertools.cycle([b.cuda() for b in real_batches(batch=8)]), None
    with pytest.raises(ValueError, match="same shape"):
        t.train_step()
