"""The metrics (metrics.jsonl, the exact W1 recomputed independently with POT) and the pictures.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from pygan import ot as pygan_ot
from pygan.train import build
from pygan.train import plots as train_plots
from train_fixtures import METRIC_KEYS, PNG_MAGIC, read_metrics, run_cli, tiny_args, tiny_config, uint8_images, w1_pot


# ============================================================================ 9. metrics


def test_metrics_records_and_exact_w1(tmp_path):
    """One JSON object per line with the documented keys; w1 recomputed with emd2_points and POT."""
    trainer = build(tiny_config(tmp_path / "run", eval_samples=48, steps=4))
    assert trainer.eval_data.shape == (48, 2)
    w1_start = w1_pot(trainer.sample(z=trainer.eval_z), trainer.eval_data)
    trainer.fit(4)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) and set(r) == METRIC_KEYS for r in records)
    assert [r["step"] for r in records] == [0, 2, 4]
    assert records[0]["loss_d"] is None and records[0]["w1"] == pytest.approx(w1_start, rel=1e-9)
    assert all(r["w1_space"] == "points" for r in records)
    assert records == trainer.history

    last = records[-1]
    fake, real = trainer.sample(z=trainer.eval_z), trainer.eval_data
    expected = float(pygan_ot.emd2_points(fake.double(), real.double(), metric="euclidean"))
    assert last["w1"] == pytest.approx(expected, rel=1e-12)
    assert last["w1"] == pytest.approx(w1_pot(fake, real), rel=1e-9)
    assert last["w1_samples"] == 48
    with torch.no_grad():
        estimate = (trainer.D(real).mean() - trainer.D(fake).mean()).item()
    assert last["critic_estimate"] == pytest.approx(estimate, rel=1e-5, abs=1e-7)
    assert last["sigma"] == 0.0 and last["step_time"] > 0 and last["elapsed"] >= records[1]["elapsed"]
    assert all(math.isfinite(last[k]) for k in ("loss_d", "loss_g", "penalty"))


def test_metrics_losses_are_means_since_the_last_evaluation(tmp_path):
    """loss_d / loss_g / penalty of a record average the train_step values since the previous record."""
    trainer = build(tiny_config(tmp_path / "run", eval_every=3, steps=6))
    values, step = [], trainer.train_step

    def wrapped():
        stats = step()
        values.append(stats)
        return stats

    trainer.train_step = wrapped
    trainer.fit(6)
    by_step = {r["step"]: r for r in read_metrics(tmp_path / "run")}
    for end in (3, 6):
        for key in ("loss_d", "loss_g", "penalty"):
            mean = sum(v[key] for v in values[end - 3:end]) / 3
            assert by_step[end][key] == pytest.approx(mean, rel=1e-9, abs=1e-12)


# ============================================================================ 10. pictures


def _assert_png(path):
    image = pytest.importorskip("matplotlib.image")
    assert path.read_bytes()[:8] == PNG_MAGIC
    arr = image.imread(path)
    assert arr.ndim == 3 and arr.shape[0] > 50 and arr.shape[1] > 50


def test_pictures_for_points(tmp_path, capsys):
    """samples.png (with the critic's contour) and w1.png are valid PNGs; no pyplot figure left open."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    out = tmp_path / "run"
    argv = [a for a in tiny_args(out, "--loss", "nsgan") if a != "--no-plots"]
    assert run_cli(argv, capsys)[0] == 0
    for name in ("samples.png", "w1.png"):
        _assert_png(out / name)
    assert plt.get_fignums() == open_before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_no_pictures_without_matplotlib(tmp_path, capsys, monkeypatch):
    """Without matplotlib the run trains, says once how to get pictures, and draws nothing."""
    monkeypatch.setattr(train_plots, "available", lambda: False)
    out = tmp_path / "run"
    argv = [a for a in tiny_args(out, "--loss", "nsgan", "--ckpt-every", "1") if a != "--no-plots"]
    rc, err = run_cli(argv, capsys)
    assert rc == 0 and err.count("matplotlib is not installed") == 1
    assert not list(out.glob("*.png"))


def test_pictures_for_images(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    data = tmp_path / "imgs.npy"
    uint8_images(data)
    out = tmp_path / "run"
    argv = [a for a in tiny_args(out, "--data", str(data), "--loss", "nsgan", "--batch-size", "8", "--steps", "1")
            if a != "--no-plots"]
    open_before = plt.get_fignums()
    assert run_cli(argv, capsys)[0] == 0
    for name in ("samples.png", "w1.png"):
        _assert_png(out / name)
    assert plt.get_fignums() == open_before
