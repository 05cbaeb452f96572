"""Checkpoints, --resume (bit-exact), interruption (request_stop, Ctrl-C) and divergence: a run
never loses work and never saves a bad checkpoint.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from pygan.train import Trainer, TrainingDiverged, build, run, toy_sample
from pygan.train import cli
from train_fixtures import (all_finite, assert_same_state, load_ckpt, read_metrics, real_batches, subprocess_env,
                            tiny_args, tiny_config, twin_setup, without_timing)


# ============================================================================ 6. resume


@pytest.mark.parametrize("extra", [{}, {"ema": 0.9, "loss": "wgan-gp-one-sided"}])
def test_resume_is_bit_exact(tmp_path, extra):
    """6 steps straight == 3 steps + --resume to 6: identical checkpoint tensors; metrics agree."""
    run(tiny_config(tmp_path / "A", **extra))
    run(tiny_config(tmp_path / "B", steps=3, **extra))
    assert load_ckpt(tmp_path / "B" / "checkpoint.pt")["step"] == 3
    trainer = run(tiny_config(tmp_path / "B", resume=True, **extra))
    assert trainer.step == 6
    a, b = load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt")
    assert a["step"] == 6
    assert_same_state(a, b)

    ma = {r["step"]: r for r in read_metrics(tmp_path / "A")}
    mb = {r["step"]: r for r in read_metrics(tmp_path / "B")}
    assert sorted(ma) == [0, 2, 4, 6]
    assert sorted(mb) == [0, 2, 3, 4, 6]  # + the end of the 3-step run
    for step in (0, 2, 6):
        assert without_timing(ma[step]) == without_timing(mb[step])
    for key in ("w1", "w1_samples", "critic_estimate", "sigma"):
        assert ma[4][key] == mb[4][key]
    # Loss fields are means since the previous evaluation: A's step 4 covers steps 3-4, B split them.
    for key in ("loss_d", "loss_g", "penalty"):
        assert ma[4][key] == pytest.approx((mb[3][key] + mb[4][key]) / 2, rel=1e-6, abs=1e-9)


def test_resume_drops_metrics_after_the_checkpoint(tmp_path):
    """Lines past the checkpoint's step (and a line cut by a crash) are dropped on resume, not duplicated."""
    out = tmp_path / "run"
    run(tiny_config(out, steps=3))
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 99, "w1": 0.0}) + "\n")
        f.write('{"step": 4, "w1": 0.')  # half a line
    run(tiny_config(out, resume=True))
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == [0, 2, 3, 4, 6]
    assert not list(out.glob(".*tmp*"))


def _request_stop_at(trainer, at_step):
    step = trainer.train_step

    def wrapped():
        stats = step()
        if trainer.step == at_step:
            trainer.request_stop()
        return stats

    trainer.train_step = wrapped


@pytest.mark.parametrize("extra", [{}, {"instance_noise": 0.2, "ema": 0.9, "lr_decay": "linear"}])
def test_interrupted_run_resumes_bit_exact(tmp_path, capsys, extra):
    """request_stop() at step 4 → "interrupted" with a checkpoint at 4; --resume then equals a straight run."""
    run(tiny_config(tmp_path / "A", **extra))
    trainer = build(tiny_config(tmp_path / "B", **extra))
    _request_stop_at(trainer, 4)
    assert trainer.fit(6) == "interrupted"
    assert "--resume" in capsys.readouterr().err
    assert load_ckpt(tmp_path / "B" / "checkpoint.pt")["step"] == 4
    assert trainer.fit(6) == "done"  # the stop request does not stick
    assert_same_state(load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt"))


def test_interrupted_run_resumes_with_identical_metrics(tmp_path):
    """Ctrl-C at step 3 (between evaluations at 2 and 4) + --resume: metrics.jsonl equals the straight run's."""
    run(tiny_config(tmp_path / "A"))
    trainer = build(tiny_config(tmp_path / "B"))
    _request_stop_at(trainer, 3)
    assert trainer.fit(6) == "interrupted"
    run(tiny_config(tmp_path / "B", resume=True))
    a = [without_timing(r) for r in read_metrics(tmp_path / "A")]
    b = [without_timing(r) for r in read_metrics(tmp_path / "B")]
    assert a == b


@pytest.mark.parametrize("extra", [{"instance_noise": 0.2}, {"lr_decay": "linear"}])
def test_resume_with_more_steps_never_silently_changes_a_schedule(tmp_path, extra):
    """3 steps + --resume --steps 6 either equals the straight 6-step run or is refused naming --steps."""
    run(tiny_config(tmp_path / "A", **extra))
    run(tiny_config(tmp_path / "B", steps=3, **extra))
    try:
        run(tiny_config(tmp_path / "B", resume=True, **extra))
    except ValueError as exc:
        assert "steps" in str(exc)
        return
    assert_same_state(load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt"))


# ============================================================================ 7. never lose work


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A torch.save failing mid-write leaves the previous checkpoint intact and no temporary file."""
    out = tmp_path / "run"
    trainer = run(tiny_config(out, steps=3))
    good = (out / "checkpoint.pt").read_bytes()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    trainer.step = 99
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    monkeypatch.setattr(torch, "save", real_save)
    assert (out / "checkpoint.pt").read_bytes() == good
    assert load_ckpt(out / "checkpoint.pt")["step"] == 3
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_request_stop_saves_and_returns_interrupted(tmp_path, capsys):
    """fit() returns "interrupted" after request_stop(), with a checkpoint at that very step."""
    (G, D, g_opt, d_opt), _ = twin_setup("nsgan")
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="nsgan", out=tmp_path / "run",
                ckpt_every=100, eval_every=100, progress=False, plots=False)
    _request_stop_at(t, 2)
    assert t.fit(50) == "interrupted"
    assert t.step == 2
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 2
    for k, v in G.state_dict().items():
        assert torch.equal(state["generator"][k], v)
    err = capsys.readouterr().err
    assert "interrupted at step 2" in err and "--resume" in err


def test_sigint_stops_the_command_with_a_checkpoint(tmp_path):
    """A real Ctrl-C to `python -m pygan train`: exit code 130, a checkpoint, a --resume hint; resumable."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "pygan", "train", *tiny_args(out, "--loss", "nsgan")]
    args[args.index("--steps") + 1] = "1000000"
    args[args.index("--ckpt-every") + 1] = "1000000"
    args[args.index("--eval-every") + 1] = "1"
    proc = subprocess.Popen(args, env=subprocess_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training progress within 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "--resume" in err
    state = load_ckpt(out / "checkpoint.pt")
    assert 2 <= state["step"] < 1000000
    assert f"interrupted at step {state['step']}" in err
    assert all(r["step"] <= state["step"] for r in read_metrics(out))


def test_second_ctrl_c_stops_at_once(tmp_path, capsys, monkeypatch):
    """A KeyboardInterrupt out of fit (the second Ctrl-C): exit code 130 naming the last checkpoint."""
    out = tmp_path / "run"
    assert cli.main(tiny_args(out, "--loss", "nsgan", "--steps", "3")) == 0

    def interrupted(self, steps):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    capsys.readouterr()
    assert cli.main(tiny_args(out, "--loss", "nsgan", "--steps", "6", "--resume")) == 130
    err = capsys.readouterr().err
    assert "without saving" in err and "checkpoint.pt (step 3)" in err
    assert load_ckpt(out / "checkpoint.pt")["step"] == 3


class NaNSwitch(nn.Module):
    """Identity until ``on`` is set, then NaN scores."""

    def __init__(self):
        super().__init__()
        self.on = False

    def forward(self, x):
        return x * float("nan") if self.on else x


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    """A critic that returns NaN from step 4 on: TrainingDiverged naming step 4 and the step-3 checkpoint."""
    switch = NaNSwitch()
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    D = nn.Sequential(D, switch)
    eval_data = toy_sample("8gaussians", 32, generator=torch.Generator().manual_seed(0))
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="wgan-gp", n_critic=2, eval_data=eval_data,
                out=tmp_path / "run", eval_every=1, ckpt_every=1, progress=False, plots=False)
    step = t.train_step

    def wrapped():
        switch.on = t.step + 1 >= 4
        return step()

    t.train_step = wrapped
    with pytest.raises(TrainingDiverged) as info:
        t.fit(10)
    message = str(info.value)
    assert "step 4" in message and "checkpoint.pt" in message and "(step 3)" in message
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 3
    assert all_finite(state["generator"]) and all_finite(state["critic"])
    assert max(r["step"] for r in read_metrics(tmp_path / "run")) == 3


def test_cli_divergence_exit_code_1(tmp_path, capsys):
    """Huge learning rates: exit code 1, a message naming the step and the last good checkpoint (finite)."""
    rc = cli.main(tiny_args(tmp_path / "run", "--loss", "nsgan", "--lr-g", "1e30", "--lr-d", "1e30", "--steps",
                            "50", "--ckpt-every", "1"))
    err = capsys.readouterr().err
    assert rc == 1, err
    failing = int(re.search(r"diverged at step (\d+)", err).group(1))
    saved = int(re.search(r"checkpoint\.pt \(step (\d+)\)", err).group(1))
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == saved < failing
    assert all_finite(state["generator"]) and all_finite(state["critic"])


class NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NaNGradSwitch(nn.Module):
    """Identity with a finite output; once ``on``, its backward returns NaN (a finite loss, a NaN update)."""

    def __init__(self):
        super().__init__()
        self.on = False

    def forward(self, x):
        return NaNGrad.apply(x) if self.on else x


def _nan_gradient_trainer(tmp_path, eval_every):
    switch = NaNGradSwitch()
    (G, D, g_opt, d_opt), _ = twin_setup("nsgan")
    G = nn.Sequential(G, switch)
    eval_data = toy_sample("8gaussians", 32, generator=torch.Generator().manual_seed(0))
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="nsgan", eval_data=eval_data,
                out=tmp_path / "run", eval_every=eval_every, ckpt_every=1, progress=False, plots=False)
    step = t.train_step

    def wrapped():
        switch.on = t.step == 2  # the generator update of step 3 has a finite loss and NaN gradients
        return step()

    t.train_step = wrapped
    return t


def test_checkpoint_never_holds_non_finite_weights(tmp_path):
    """A step whose update makes the weights NaN (finite loss) is a divergence, never a checkpoint."""
    t = _nan_gradient_trainer(tmp_path, eval_every=100)
    with pytest.raises(TrainingDiverged, match=r"step 3\b") as info:
        t.fit(10)
    assert "checkpoint.pt (step 2)" in str(info.value)
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 2
    assert all_finite(state["generator"]) and all_finite(state["critic"])


def test_non_finite_generator_is_reported_as_divergence(tmp_path):
    """NaN weights after a finite-loss step are a TrainingDiverged, not a ValueError from the W1 solver."""
    t = _nan_gradient_trainer(tmp_path, eval_every=1)
    with pytest.raises(TrainingDiverged):
        t.fit(10)


# ============================================================================ GPU only


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_on_cuda(tmp_path):
    """Resuming on a GPU: the checkpoint's RNG states must reach Generator.set_state as CPU tensors."""
    run(tiny_config(tmp_path / "run", steps=3, device="cuda"))
    assert run(tiny_config(tmp_path / "run", resume=True, device="cuda")).step == 6
