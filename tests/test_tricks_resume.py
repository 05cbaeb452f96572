"""The tricks and --arch dcgan through ``pygan train``: resume is bit-exact with every trick on, 2
processes equal one process with twice the batch (the batch-coupled tricks use the global batch),
and bad options exit 2 before the first step, naming the option, with nothing written to --out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from pygan.train import cli, run
from train_fixtures import assert_same_state, load_ckpt, tiny_config

ALL_TRICKS = dict(feature_matching=True, historical_averaging=0.05, label_smoothing=0.9, virtual_batchnorm=True)
CASES = {
    "nsgan, every trick": dict(loss="nsgan", minibatch_discrimination=True, minibatch_kernels=3, **ALL_TRICKS),
    "nsgan-r1, every trick it takes": dict(loss="nsgan-r1", feature_layer=1, **ALL_TRICKS),
    "wgan-gp, fm + ha + vbn": dict(loss="wgan-gp", feature_matching=True, historical_averaging=0.05,
                                   virtual_batchnorm=True, n_critic=2),
    "dcgan nsgan, every trick": dict(loss="nsgan", arch="dcgan", data="shapes", dcgan_width=4, batch_size=8,
                                     eval_samples=16, latent_dim=8, minibatch_discrimination=True,
                                     minibatch_kernels=3, **ALL_TRICKS),
    "dcgan wgan-gp (layer norm)": dict(loss="wgan-gp", arch="dcgan", data="shapes", dcgan_width=4, batch_size=8,
                                       eval_samples=16, latent_dim=8, n_critic=1, historical_averaging=0.05),
}


@pytest.mark.parametrize("name", list(CASES))
def test_resume_is_bit_exact_with_the_tricks(tmp_path, name):
    kw = CASES[name]
    run(tiny_config(tmp_path / "A", **kw))
    run(tiny_config(tmp_path / "B", steps=3, **kw))
    trainer = run(tiny_config(tmp_path / "B", resume=True, **kw))
    assert trainer.step == 6
    a, b = load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt")
    assert_same_state(a, b)
    assert a["tricks"]["historical_average"]["critic"]["count"] == 1 + a["critic_steps"]
    if kw.get("virtual_batchnorm"):
        assert "reference" in a["generator"] and any(k.endswith("reference_var") for k in a["generator"])


def test_resume_refuses_another_trick(tmp_path, capsys):
    run(tiny_config(tmp_path / "A", loss="nsgan", steps=2, historical_averaging=0.1))
    argv = ["--out", str(tmp_path / "A"), "--resume", "--loss", "nsgan", "--hidden", "16", "--layers", "1",
            "--batch-size", "16", "--eval-samples", "64", "--eval-every", "2", "--ckpt-every", "3", "--steps", "4",
            "--no-plots", "--no-progress", "--device", "cpu", "--historical-averaging", "0.2"]
    assert cli.main(argv) == 2
    assert "historical_averaging: checkpoint 0.1, now 0.2" in capsys.readouterr().err


BAD = [
    (["--loss", "wgan-gp", "--label-smoothing", "0.9"], "--label-smoothing 0.9 applies to the JS losses only"),
    (["--loss", "wgan-gp", "--minibatch-discrimination"], "--minibatch-discrimination applies to gan and nsgan only"),
    (["--loss", "nsgan-r1", "--minibatch-discrimination"], "--minibatch-discrimination applies to gan and nsgan"),
    (["--loss", "wgan", "--minibatch-discrimination"], "--minibatch-discrimination applies to gan and nsgan"),
    (["--feature-matching", "--feature-layer", "2"], "--feature-layer must be one of the critic's 1 feature layers"),
    (["--feature-matching", "--feature-layer", "0"], "--feature-layer must be an int >= 1"),
    (["--feature-layer", "1"], "--feature-layer is only used with --feature-matching"),
    (["--historical-averaging", "-0.5"], "--historical-averaging must be a finite number >= 0"),
    (["--historical-averaging", "nan"], "--historical-averaging must be a finite number"),
    (["--label-smoothing", "0"], "--label-smoothing must be a finite number > 0 and <= 1"),
    (["--label-smoothing", "1.2"], "--label-smoothing must be a finite number > 0 and <= 1"),
    (["--arch", "resnet"], "--arch must be 'small' or 'dcgan'"),
    (["--arch", "dcgan"], "--arch dcgan needs images"),
    (["--arch", "dcgan", "--data", "IMG48"], "--arch dcgan: images of side 32 or 64 only"),
    (["--arch", "dcgan", "--data", "POINTS"], "--arch dcgan needs images"),
    (["--arch", "dcgan", "--data", "shapes", "--feature-matching", "--feature-layer", "4"],
     "--feature-layer must be one of the critic's 3 feature layers"),
    (["--image-side", "48", "--data", "shapes"], "--image-side must be 32 or 64"),
    (["--minibatch-kernels", "0"], "--minibatch-kernels must be an int >= 1"),
    (["--dcgan-width", "0"], "--dcgan-width must be an int >= 1"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[" ".join(e) for e, _ in BAD])
def test_bad_tricks_exit_2_before_anything_is_written(tmp_path, capsys, extra, message):
    import numpy as np

    np.save(tmp_path / "img48.npy", np.random.default_rng(0).uniform(-1, 1, (20, 1, 48, 48)).astype(np.float32))
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    extra = [str(tmp_path / "img48.npy") if e == "IMG48" else str(tmp_path / "pts.npy") if e == "POINTS" else e
             for e in extra]
    out = tmp_path / "out"
    argv = ["--out", str(out), "--hidden", "16", "--layers", "1", "--batch-size", "8", "--steps", "2",
            "--no-plots", "--no-progress", "--device", "cpu", *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pygan train: error: ") and message in err[0], err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------
# data parallel: 2 gloo processes with batch B == 1 process with batch 2B

DDP_CONFIGS = {
    "nsgan+mbd+fm+vbn+ha+ls": ["--loss", "nsgan", "--minibatch-discrimination", "--minibatch-kernels", "3",
                               "--feature-matching", "--virtual-batchnorm", "--historical-averaging", "0.05",
                               "--label-smoothing", "0.9"],
    "wgan-gp+fm+vbn+ha": ["--loss", "wgan-gp", "--feature-matching", "--virtual-batchnorm",
                          "--historical-averaging", "0.05"],
}


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="no gloo backend")
def test_two_processes_equal_one_with_every_trick(tmp_path):
    from test_train_ddp import BATCH, RTOL, ATOL, WORLD, launch_ranks, load, run_single, train_args

    dirs = {kind: {n: tmp_path / kind / n.replace("+", "_") for n in DDP_CONFIGS} for kind in ("single", "ddp", "r1")}
    argvs = [[train_args(dirs["ddp" if r == 0 else "r1"][n], BATCH, extra) for n, extra in DDP_CONFIGS.items()]
             for r in range(WORLD)]
    launch_ranks(argvs, tmp_path)
    for n, extra in DDP_CONFIGS.items():
        run_single(train_args(dirs["single"][n], WORLD * BATCH, extra))
        a, b = load(dirs["single"][n]), load(dirs["ddp"][n])
        assert a["step"] == b["step"] > 0
        assert torch.equal(a["rng"]["trainer"], b["rng"]["trainer"])
        # the reference batch is the global batch's noise, the same for both
        assert torch.equal(a["generator"]["reference"], b["generator"]["reference"])
        for key in ("generator", "critic"):
            for k in a[key]:
                torch.testing.assert_close(b[key][k], a[key][k], rtol=RTOL, atol=ATOL,
                                           msg=lambda m, key=key, k=k: f"{n} {key} {k}: {m}")
        for key in ("g_optimizer", "d_optimizer", "tricks"):
            torch.testing.assert_close(b[key], a[key], rtol=RTOL, atol=ATOL, msg=lambda m, key=key: f"{n} {key}: {m}")
        assert not Path(dirs["r1"][n]).exists()
