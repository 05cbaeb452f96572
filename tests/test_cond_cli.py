"""``python -m pygan train`` with conditional models: every loss, the metrics' keys, pictures, bad
input (exit 2 with one line before the first step, nothing written to --out) and bit-exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from pygan.train import LOSSES, run
from pygan.train import cli
from train_fixtures import PNG_MAGIC, assert_same_state, load_ckpt, read_metrics, tiny_args, tiny_config, \
    without_timing


def _main(argv, capsys):
    if "--plots" in argv:  # tiny_args turns the pictures off; these tests draw them
        argv = [a for a in argv if a not in ("--plots", "--no-plots")]
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("loss", LOSSES)
def test_conditional_every_loss(tmp_path, capsys, loss):
    out = tmp_path / "run"
    rc, err = _main(tiny_args(out, "--conditional", "--loss", loss, "--steps", "2"), capsys)
    assert rc == 0, err
    rec = read_metrics(out)[-1]
    assert rec["step"] == 2 and len(rec["w1_per_class"]) == 8
    assert all(v >= 0 for v in rec["w1_per_class"]) and rec["w1"] > 0
    assert "class_accuracy" not in rec and "code_accuracy" not in rec


def test_labels_from_files(tmp_path, capsys):
    """.npy data + --labels, and the same as an .npz with x and y: the same run."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.arange(60) % 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    rc, err = _main(tiny_args(tmp_path / "A", "--conditional", "--data", str(tmp_path / "x.npy"), "--labels",
                              str(tmp_path / "y.npy")), capsys)
    assert rc == 0, err
    rc, err = _main(tiny_args(tmp_path / "B", "--conditional", "--projection", "--data", str(tmp_path / "xy.npz")),
                    capsys)
    assert rc == 0, err
    ra, rb = read_metrics(tmp_path / "A")[-1], read_metrics(tmp_path / "B")[-1]
    assert len(ra["w1_per_class"]) == len(rb["w1_per_class"]) == 3
    assert ra["w1_samples"] == 12  # 60 // 5 held out


def test_digits_class_accuracy(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    rc, err = _main(tiny_args(out, "--conditional", "--data", "digits", "--steps", "2", "--plots"), capsys)
    assert rc == 0, err
    rec = read_metrics(out)[-1]
    assert 0 <= rec["class_accuracy"] <= 1 and len(rec["w1_per_class"]) == 10
    assert rec["w1_space"] == "flattened pixels"
    assert (out / "samples.png").read_bytes().startswith(PNG_MAGIC)


def test_infogan_and_pictures(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _main(tiny_args(out, "--infogan-categorical", "8", "--infogan-continuous", "1", "--plots"), capsys)
    assert rc == 0, err
    rec = read_metrics(out)[-1]
    assert 0 < rec["code_accuracy"] <= 1 and rec["w1"] > 0
    for name in ("samples.png", "w1.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    pytest.importorskip("sklearn")
    out = tmp_path / "digits"
    rc, err = _main(tiny_args(out, "--infogan-categorical", "10", "--infogan-continuous", "2", "--data", "digits",
                              "--steps", "2", "--plots"), capsys)
    assert rc == 0, err
    assert 0 < read_metrics(out)[-1]["code_accuracy"] <= 1
    assert (out / "traversal.png").read_bytes().startswith(PNG_MAGIC)


def test_pix2pix_outlines_and_npz(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _main(tiny_args(out, "--pix2pix", "--data", "outlines", "--batch-size", "4", "--steps", "2",
                              "--plots"), capsys)
    assert rc == 0, err
    rec = read_metrics(out)[-1]
    assert rec["l1"] > 0 and rec["w1"] > 0 and rec["w1_samples"] == 32
    assert (out / "samples.png").read_bytes().startswith(PNG_MAGIC)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "p.npz", a=rng.uniform(-1, 1, (20, 1, 16, 16)).astype(np.float32),
             b=rng.integers(0, 256, (20, 3, 16, 16)).astype(np.uint8))  # other channels, [0, 255]
    rc, err = _main(tiny_args(tmp_path / "npz", "--pix2pix", "--data", str(tmp_path / "p.npz"), "--batch-size", "4",
                              "--steps", "2", "--loss", "wgan-gp"), capsys)
    assert rc == 0, err


def _bad_inputs(tmp):
    rng = np.random.default_rng(0)
    np.save(tmp / "x.npy", rng.normal(size=(20, 2)).astype(np.float32))
    np.save(tmp / "short.npy", np.arange(19) % 2)
    np.save(tmp / "float.npy", (np.arange(20) % 2).astype(np.float64))
    np.save(tmp / "neg.npy", np.arange(20) % 3 - 1)
    np.save(tmp / "gap.npy", (np.arange(20) % 2) * 2)  # classes 0 and 2: class 1 has no sample
    np.savez(tmp / "y_neg.npz", x=rng.normal(size=(20, 2)), y=np.arange(20) % 3 - 1)
    np.savez(tmp / "pairs.npz", a=np.zeros((20, 1, 16, 16)), b=np.zeros((20, 1, 16, 16)))
    np.savez(tmp / "mismatch.npz", a=np.zeros((20, 1, 16, 16)), b=np.zeros((20, 1, 32, 32)))
    np.savez(tmp / "odd.npz", a=np.zeros((20, 1, 12, 12)), b=np.zeros((20, 1, 12, 12)))
    return [
        (["--conditional", "--data", "{t}/x.npy", "--labels", "{t}/short.npy"], "short.npy"),
        (["--conditional", "--data", "{t}/x.npy", "--labels", "{t}/float.npy"], "float.npy"),
        (["--conditional", "--data", "{t}/x.npy", "--labels", "{t}/neg.npy"], "neg.npy"),
        (["--conditional", "--data", "{t}/x.npy", "--labels", "{t}/gap.npy"], "class 1"),
        (["--conditional", "--data", "{t}/x.npy", "--labels", "{t}/none.npy"], "none.npy"),
        (["--conditional", "--data", "{t}/y_neg.npz"], "y_neg.npz"),
        (["--conditional", "--data", "{t}/x.npy"], "--conditional"),
        (["--conditional", "--data", "{t}/pairs.npz"], "pairs.npz"),
        (["--conditional", "--data", "8gaussians", "--labels", "{t}/short.npy"], "--labels"),
        (["--labels", "{t}/short.npy"], "--labels"),
        (["--projection"], "--projection"),
        (["--pix2pix"], "--pix2pix"),
        (["--pix2pix", "--data", "{t}/x.npy"], "--pix2pix"),
        (["--pix2pix", "--data", "{t}/y_neg.npz"], "y_neg.npz"),
        (["--pix2pix", "--data", "{t}/mismatch.npz"], "mismatch.npz"),
        (["--pix2pix", "--data", "{t}/odd.npz"], "odd.npz"),
        (["--data", "outlines"], "--pix2pix"),
        (["--pix2pix", "--conditional", "--data", "outlines"], "choose one"),
        (["--infogan-categorical", "0"], "--infogan-categorical"),
        (["--infogan-categorical", "1"], "--infogan-categorical"),
        (["--infogan-continuous", "0"], "--infogan-continuous"),
        (["--infogan-continuous", "-2"], "--infogan-continuous"),
        (["--infogan-categorical", "4", "--lambda-info", "-1"], "--lambda-info"),
        (["--pix2pix", "--data", "outlines", "--lambda-l1", "nan"], "--lambda-l1"),
        # the DCGAN architecture and the training tricks do not reach a conditional model's updates
        (["--conditional", "--historical-averaging", "0.01"], "--historical-averaging"),
        (["--conditional", "--loss", "nsgan", "--label-smoothing", "0.9"], "--label-smoothing"),
        (["--infogan-categorical", "4", "--feature-matching"], "--feature-matching"),
        (["--pix2pix", "--data", "outlines", "--virtual-batchnorm"], "--virtual-batchnorm"),
    ]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    for i, (extra, named) in enumerate(_bad_inputs(tmp_path)):
        out = tmp_path / f"out{i}"
        argv = tiny_args(out, *[a.replace("{t}", str(tmp_path)) for a in extra])
        rc, err = _main(argv, capsys)
        lines = err.strip().splitlines()
        assert rc == 2, (extra, err)
        assert len(lines) == 1 and lines[0].startswith("pygan train: error:"), (extra, err)
        assert named in lines[0], (extra, lines[0])
        assert not out.exists(), extra


@pytest.mark.parametrize("extra", [
    {"conditional": True, "loss": "wgan-gp", "projection": True},
    {"infogan_categorical": 8, "infogan_continuous": 2, "loss": "nsgan", "ema": 0.9},
    {"pix2pix": True, "data": "outlines", "loss": "nsgan", "batch_size": 4, "eval_samples": 8},
])
def test_resume_is_bit_exact_with_conditions(tmp_path, extra):
    """6 steps straight == 3 steps + --resume to 6, with every kind of condition."""
    run(tiny_config(tmp_path / "A", **extra))
    run(tiny_config(tmp_path / "B", steps=3, **extra))
    run(tiny_config(tmp_path / "B", resume=True, **extra))
    assert_same_state(load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt"))
    ma = {r["step"]: without_timing(r) for r in read_metrics(tmp_path / "A")}
    mb = {r["step"]: without_timing(r) for r in read_metrics(tmp_path / "B")}
    for step in (0, 2, 6):
        assert ma[step] == mb[step]
    for key in ("w1_per_class", "code_accuracy", "l1"):
        if key in ma[6]:
            assert ma[6][key] == mb[6][key] and ma[4][key] == mb[4][key]


def test_resume_refuses_other_conditions(tmp_path, capsys):
    run(tiny_config(tmp_path / "A", steps=2, conditional=True))
    rc, err = _main(tiny_args(tmp_path / "A", "--resume", "--steps", "4", "--loss", "wgan-gp"), capsys)
    assert rc == 2 and "conditional" in err


def test_resume_of_a_checkpoint_from_before_the_conditional_options(tmp_path):
    """A checkpoint whose configuration lacks the conditional options resumes when they are at their
    defaults (they did not exist, so that run trained without them), and is refused otherwise."""
    import torch

    from pygan.train.config import check_resume_config

    out = tmp_path / "A"
    run(tiny_config(out, steps=2))
    state = load_ckpt(out / "checkpoint.pt")
    old = {k: v for k, v in state["config"].items() if k not in ("conditional", "projection", "labels",
                                                                 "infogan_categorical", "infogan_continuous",
                                                                 "lambda_info", "pix2pix", "lambda_l1")}
    now = dict(state["config"])
    check_resume_config(old, now)
    with pytest.raises(ValueError, match="conditional"):
        check_resume_config(old, dict(now, conditional=True))
    assert torch.is_tensor(state["generator"]["0.weight"])


@pytest.mark.parametrize("loss", LOSSES)
def test_pix2pix_every_loss(tmp_path, capsys, loss):
    out = tmp_path / "run"
    rc, err = _main(tiny_args(out, "--pix2pix", "--data", "outlines", "--loss", loss, "--batch-size", "2",
                              "--steps", "1", "--eval-samples", "8", "--n-critic", "1"), capsys)
    assert rc == 0, err
    rec = read_metrics(out)[-1]
    assert rec["step"] == 1 and rec["l1"] > 0 and rec["w1"] > 0
