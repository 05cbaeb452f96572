"""``python -m pygan train``: bad input fails before training (exit 2), --resume / --force
rules, the parser against TrainConfig, and image data end to end.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from pygan.train import TrainConfig, build
from pygan.train import cli
from train_fixtures import load_ckpt, read_metrics, run_cli, subprocess_env, tiny_args, tiny_config, uint8_images, w1_pot


# ============================================================================ 8. bad input before training


BAD_OPTIONS = [
    (["--loss", "lsgan"], "gan, nsgan, wgan, wgan-gp, wgan-gp-one-sided, nsgan-r1, wgan-fd"),
    (["--data", "moons"], "8gaussians, 25gaussians, swissroll"),
    (["--steps=-1"], "--steps"),
    (["--eval-every", "0"], "--eval-every"),
    (["--ckpt-every", "0"], "--ckpt-every"),
    (["--eval-samples", "0"], "--eval-samples"),
    (["--lazy-every", "0"], "--lazy-every"),
    (["--hidden", "0"], "--hidden"),
    (["--layers", "0"], "--layers"),
    (["--batch-size", "0"], "--batch-size"),
    (["--n-critic", "0"], "--n-critic"),
    (["--latent-dim", "0"], "--latent-dim"),
    (["--lr-g=-1e-4"], "--lr-g"),
    (["--lr-d", "nan"], "--lr-d"),
    (["--penalty-weight", "inf"], "--penalty-weight"),
    (["--clip=-0.01"], "--clip"),
    (["--instance-noise=-0.1"], "--instance-noise"),
    (["--ema", "1"], "--ema"),
    (["--ema=-0.5"], "--ema"),
    (["--device", "tpu:7"], "--device"),
    (["--lr-decay", "cosine"], "--lr-decay"),
]


@pytest.mark.parametrize("extra, expected", BAD_OPTIONS)
def test_bad_options_fail_before_training(tmp_path, capsys, extra, expected):
    """CLI: exit code 2 and a message naming the option; build(): ValueError; nothing written."""
    out = tmp_path / "run"
    rc, err = run_cli(tiny_args(out, *extra), capsys)
    assert rc == 2
    assert "error" in err and expected in err
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoint.pt").exists()
    cfg = cli.TrainConfig(**vars(cli.parser().parse_args(tiny_args(out, *extra))))
    with pytest.raises(ValueError, match=re.escape(expected)):
        build(cfg)
    assert not (out / "metrics.jsonl").exists()


def test_wrong_shape_data_file_fails_before_training(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((20, 3, 5), np.float32))
    rc, err = run_cli(tiny_args(tmp_path / "run", "--data", str(tmp_path / "bad.npy")), capsys)
    assert rc == 2 and "bad.npy" in err and "shape" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_existing_run_needs_resume_or_force(tmp_path, capsys):
    """A run in --out is never overwritten silently; --force removes only the files a run writes."""
    out = tmp_path / "run"
    assert run_cli(tiny_args(out, "--loss", "nsgan"), capsys)[0] == 0
    ckpt = (out / "checkpoint.pt").read_bytes()
    metrics = (out / "metrics.jsonl").read_text()
    (out / "notes.txt").write_text("my notes")

    rc, err = run_cli(tiny_args(out, "--loss", "nsgan", "--seed", "1"), capsys)
    assert rc == 2 and "--resume" in err and "--force" in err
    assert (out / "checkpoint.pt").read_bytes() == ckpt and (out / "metrics.jsonl").read_text() == metrics
    with pytest.raises(ValueError, match="already holds a run"):
        build(tiny_config(out))

    rc, _ = run_cli(tiny_args(out, "--loss", "nsgan", "--seed", "1", "--force", "--steps", "2"), capsys)
    assert rc == 0
    assert (out / "notes.txt").read_text() == "my notes"
    assert [r["step"] for r in read_metrics(out)] == [0, 2]  # the old run's records are gone
    assert load_ckpt(out / "checkpoint.pt")["config"]["seed"] == 1
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_force_with_bad_data_keeps_the_old_run(tmp_path, capsys):
    """--force with a --data that fails to load refuses before deleting the previous run."""
    out = tmp_path / "run"
    assert run_cli(tiny_args(out, "--loss", "nsgan"), capsys)[0] == 0
    np.save(tmp_path / "bad.npy", np.zeros((20, 3, 5), np.float32))
    rc, _ = run_cli(tiny_args(out, "--loss", "nsgan", "--force", "--data", str(tmp_path / "bad.npy")), capsys)
    assert rc == 2
    assert (out / "checkpoint.pt").exists() and (out / "metrics.jsonl").exists()


def test_resume_without_checkpoint(tmp_path, capsys):
    """--resume on an empty --out: exit code 2, a message about the missing checkpoint, nothing written."""
    rc, err = run_cli(tiny_args(tmp_path / "run", "--resume"), capsys)
    assert rc == 2 and "checkpoint" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("change, key", [(["--loss", "wgan-gp"], "loss"), (["--hidden", "32"], "hidden"),
                                         (["--seed", "3"], "seed"), (["--lr-d", "0.5"], "lr_d")])
def test_resume_with_another_configuration_names_the_keys(tmp_path, capsys, change, key):
    """--resume refuses a different configuration, says which keys differ, and touches nothing."""
    out = tmp_path / "run"
    assert run_cli(tiny_args(out, "--loss", "nsgan", "--steps", "3"), capsys)[0] == 0
    ckpt, metrics = (out / "checkpoint.pt").read_bytes(), (out / "metrics.jsonl").read_text()
    argv = tiny_args(out, "--loss", "nsgan", "--resume", "--steps", "6", *change)
    rc, err = run_cli(argv, capsys)
    assert rc == 2 and f"{key}:" in err
    assert (out / "checkpoint.pt").read_bytes() == ckpt and (out / "metrics.jsonl").read_text() == metrics
    # Options that do not change what is trained may change.
    rc, _ = run_cli(tiny_args(out, "--loss", "nsgan", "--resume", "--steps", "6", "--eval-every", "1"), capsys)
    assert rc == 0 and load_ckpt(out / "checkpoint.pt")["step"] == 6


# ============================================================================ 11. command line


def test_cli_help_documents_every_option():
    """`python -m pygan train --help` has a flag for every TrainConfig field; `python -m pygan --help` lists train."""
    proc = subprocess.run([sys.executable, "-m", "pygan", "train", "--help"], env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for f in dataclasses.fields(TrainConfig):
        flag = f.name.replace("_", "-")
        assert re.search(rf"--(no-)?{flag}\b", proc.stdout), flag
    proc = subprocess.run([sys.executable, "-m", "pygan", "--help"], env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and re.search(r"^\s+train\s", proc.stdout, re.M)


def test_cli_parser_defaults_and_types_match_train_config():
    """Parsing no flags gives TrainConfig(); flags parse to the field's type."""
    assert cli.TrainConfig(**vars(cli.parser().parse_args([]))) == TrainConfig()
    args = cli.parser().parse_args(["--lr-g", "0.5", "--batch-size", "8", "--no-plots", "--no-progress", "--resume",
                                    "--force", "--loss", "wgan", "--ema", "0.25"])
    assert (args.lr_g, args.batch_size, args.plots, args.progress, args.resume, args.force, args.loss, args.ema) == \
        (0.5, 8, False, False, True, True, "wgan", 0.25)
    assert isinstance(args.lr_g, float) and isinstance(args.batch_size, int)


def test_cli_wgan_clips_the_critic_and_uses_rmsprop(tmp_path, capsys):
    """--loss wgan: critic weights within [-clip, clip] (from the start), RMSprop state in both optimisers."""
    out = tmp_path / "run"
    argv = tiny_args(out, "--loss", "wgan", "--clip", "0.02", "--lr-d", "0.01", "--n-critic", "2", "--steps", "3")
    assert run_cli(argv, capsys)[0] == 0
    state = load_ckpt(out / "checkpoint.pt")
    flat = torch.cat([v.flatten() for v in state["critic"].values()])
    assert flat.abs().max() <= 0.02 and (flat.abs() == 0.02).any()
    for opt in ("g_optimizer", "d_optimizer"):
        assert all("square_avg" in s and "exp_avg" not in s for s in state[opt]["state"].values())
    assert state["config"]["penalty_weight"] == 0.1 and state["config"]["latent_dim"] == 2  # point defaults


# ============================================================================ 12. image data end to end


@pytest.mark.parametrize("eval_samples", [64, 5])
def test_image_data_end_to_end(tmp_path, capsys, eval_samples):
    """uint8 N x 1 x 8 x 8 trains 2 wgan-gp steps with the DCGAN models; w1 over min(eval_samples, N // 5)."""
    data = tmp_path / "imgs.npy"
    images = uint8_images(data, n=40)
    out = tmp_path / "run"
    argv = tiny_args(out, "--data", str(data), "--loss", "wgan-gp", "--n-critic", "1", "--batch-size", "8",
                     "--steps", "2", "--eval-every", "1", "--eval-samples", str(eval_samples))
    assert run_cli(argv, capsys)[0] == 0
    records = read_metrics(out)
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(r["w1_space"] == "flattened pixels" for r in records)
    assert all(r["w1"] is not None and r["w1"] > 0 and r["w1_samples"] == min(eval_samples, 40 // 5)
               for r in records)
    state = load_ckpt(out / "checkpoint.pt")
    assert state["step"] == 2 and state["config"]["latent_dim"] == 100
    assert state["config"]["penalty_weight"] == 10.0 and state["config"]["batch_size"] == 8
    # The held-out images are rows of the file, mapped to [-1, 1].
    trainer = build(tiny_config(out, data=str(data), loss="wgan-gp", n_critic=1, batch_size=8, steps=2,
                                eval_every=1, eval_samples=eval_samples, resume=True))
    mapped = torch.from_numpy(images).float() / 127.5 - 1
    held = trainer.eval_data
    assert held.shape == (min(eval_samples, 8), 1, 8, 8)
    assert all((mapped == h).flatten(1).all(1).any() for h in held)
    fake = trainer.sample(z=trainer.eval_z)
    assert fake.shape == held.shape and fake.abs().max() <= 1
    assert records[-1]["w1"] == pytest.approx(w1_pot(fake, held), rel=1e-9)


def test_threads_option_sets_torchs_threads(tmp_path, capsys):
    """--threads N sets torch's threads (default 1); --threads 0 is refused with exit code 2."""
    assert TrainConfig().threads == 1 and cli.parser().parse_args([]).threads == 1
    try:
        build(tiny_config(tmp_path / "a", threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    rc, err = run_cli(tiny_args(tmp_path / "b", "--threads", "0"), capsys)
    assert rc == 2 and "--threads" in err


@pytest.mark.parametrize("busy, warned", [(0.9, True), (0.05, False)])
def test_busy_cpus_are_warned_about(tmp_path, capsys, monkeypatch, busy, warned):
    """When other processes keep the CPUs busy the command says so once, before training."""
    from pygan.train import cpu

    monkeypatch.setattr(cpu, "busy_fraction", lambda interval=0.2: busy)
    rc, err = run_cli(tiny_args(tmp_path / "run", "--threads", "2"), capsys)
    assert rc == 0
    assert err.count("CPUs busy") == (1 if warned else 0)
    if warned:
        assert "90% of the" in err and "--threads 1" in err
