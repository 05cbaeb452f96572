"""pygan.experiments: tiny, fast versions of ``clipping-vs-gp`` and ``w-vs-js`` (structure of the outputs,
the properties that hold even after a few steps), determinism, strict JSON, and the command line's
refusals. One thread, tiny critics: the file takes a few seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pygan.experiments import EXPERIMENTS, _common
from pygan.experiments import cli as experiment_cli
from pygan.experiments.clipping_vs_gp import (FILES as CLIP_FILES, ClippingConfig, _train, activation_grad_norms,
                                              fraction_near, make_critic)
from pygan.experiments.clipping_vs_gp import run as run_clipping
from pygan.experiments.w_vs_js import FILES as WJ_FILES, WvsJSConfig, js_kl_binned, js_kl_knn
from pygan.experiments.w_vs_js import run as run_w_vs_js

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
LOG2 = math.log(2)


def _strict_load(path: Path):
    """json.load that fails on NaN / Infinity tokens (the report must be strict JSON)."""
    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token} in {path}")
    return json.loads(path.read_text(), parse_constant=refuse)


def _tiny_clipping(out: Path, **kw) -> ClippingConfig:
    opts = dict(out=str(out), steps=4, surface_steps=2, width=16, surface_width=8, batch_size=32,
                measure_batches=2, grid=12, quiet=True)
    opts.update(kw)
    return ClippingConfig(**opts)


@pytest.fixture(scope="module")
def clipping_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    cfg = _tiny_clipping(out)
    return out, cfg, run_clipping(cfg)


@pytest.fixture(scope="module")
def w_vs_js_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wjs")
    cfg = WvsJSConfig(out=str(out), thetas=(0.0, 1e-3, -0.3, 0.5, 0.75, -1.0, 2.5), samples=200, quiet=True)
    return out, cfg, run_w_vs_js(cfg)


# ---- clipping-vs-gp ------------------------------------------------------------------------------------


def test_clipping_outputs_and_report_structure(clipping_run):
    out, cfg, report = clipping_run
    for name in CLIP_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*tmp*")), "temporary files left behind"
    on_disk = _strict_load(out / "report.json")
    assert on_disk["experiment"] == "clipping-vs-gp"
    settings = on_disk["depth"]["settings"]
    assert list(settings) == ["clip=0.1", "clip=0.01", "clip=0.001", "gp"]
    for name, entry in settings.items():
        norms = entry["layer_grad_norms"]
        assert len(norms) == cfg.layers + 1 == 13
        assert all(v is not None and v >= 0 for v in norms)
        # the output layer's gradient is ±1/B per sample, whatever the critic: sqrt(2B) / B
        assert norms[-1] == pytest.approx(math.sqrt(2 * cfg.batch_size) / cfg.batch_size, rel=1e-6)
        assert set(entry) >= {"critic_loss", "penalty", "input_grad_norm", "fraction_near_clip", "loss_curve",
                              "layer_grad_norm_log10_span", "grad_norm_ratio_layer1_over_last"}
        if name == "gp":
            assert set(entry["fraction_near_clip"]) == {"0.1", "0.01", "0.001"}
        else:
            assert 0 <= entry["fraction_near_clip"] <= 1
            assert entry["inside_clip_range"] is True
    assert set(on_disk["surfaces"]["datasets"]) == {"8gaussians", "25gaussians", "swissroll"}
    assert all(isinstance(v, bool) for v in on_disk["checks"].values())


def test_clipped_weights_stay_inside_the_range(clipping_run):
    _, cfg, _ = clipping_run
    for c in cfg.clips:
        critic, record = _train(cfg, "swissroll", f"clip={c:g}", 16, 12, 3, torch.device("cpu"))
        assert record["clip"] == c
        for p in critic.parameters():  # weights and biases: ClippedRMSprop clamps every parameter
            assert bool((p.detach().abs() <= c).all())  # c as a float32, the parameters' dtype
        # after the first step every He-initialised first-layer weight (std 1 for 2 inputs) is far beyond c
        assert fraction_near(critic[0].weight.detach(), c) > 0.5


def test_clipping_is_deterministic(tmp_path):
    a = run_clipping(_tiny_clipping(tmp_path / "a", surfaces=False, plots=False))
    b = run_clipping(_tiny_clipping(tmp_path / "b", surfaces=False, plots=False))
    for name in a["depth"]["settings"]:
        ea, eb = a["depth"]["settings"][name], b["depth"]["settings"][name]
        assert ea["layer_grad_norms"] == eb["layer_grad_norms"]
        assert ea["loss_curve"] == eb["loss_curve"]
    assert not (tmp_path / "a" / "weights.png").exists()  # plots=False: report only


def test_activation_grad_norms_match_a_hand_computation():
    critic = make_critic(6, 2, torch.Generator().manual_seed(3), "cpu").double()
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    norms = activation_grad_norms(critic, real, fake)
    x = torch.cat([real, fake])
    h1 = torch.relu(critic[0](x)).detach().requires_grad_(True)
    h2 = torch.relu(critic[2](h1))
    out = critic[4](h2)
    loss = out[5:].mean() - out[:5].mean()
    (g1,) = torch.autograd.grad(loss, h1)
    assert len(norms) == 3
    assert norms[0] == pytest.approx(float(g1.norm()), rel=1e-12)
    assert norms[2] == pytest.approx(math.sqrt(10) / 5, rel=1e-12)


def test_fraction_near():
    w = torch.tensor([0.01, -0.01, 0.0100999, 0.0098, 0.0, -0.00995])
    assert fraction_near(w, 0.01) == pytest.approx(4 / 6)


def test_make_critic_has_no_batchnorm_and_he_init():
    critic = make_critic(512, 12, torch.Generator().manual_seed(0), "cpu")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    assert sum(isinstance(m, nn.Linear) for m in critic) == 13
    assert float(critic[2].weight.detach().std()) == pytest.approx(math.sqrt(2 / 512), rel=0.02)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(clips=()), dict(clips=(0.01, -1.0)), dict(penalty_weight=-1.0),
                                 dict(datasets=("moons",)), dict(width=True)])
def test_clipping_rejects_bad_options(tmp_path, bad):
    with pytest.raises(_common.ExperimentError):
        run_clipping(_tiny_clipping(tmp_path, **bad))
    assert not (tmp_path / "report.json").exists()


# ---- w-vs-js -------------------------------------------------------------------------------------------


def test_w1_equals_abs_theta_exactly_with_shared_y(w_vs_js_run):
    out, cfg, report = w_vs_js_run
    for theta, w1 in zip(report["theta"], report["w1_shared_y"]):
        assert abs(w1 - abs(theta)) <= 1e-9, (theta, w1)
    assert report["w1_shared_y"][0] == 0.0  # θ = 0: the same point cloud twice
    for theta, w1 in zip(report["theta"], report["w1_independent_y"]):  # W1 >= |θ|: every pair is that far apart
        assert w1 >= abs(theta) - 1e-12


def test_js_is_log2_and_kl_infinite_away_from_zero(w_vs_js_run):
    out, cfg, report = w_vs_js_run
    on_disk = _strict_load(out / "report.json")
    for i, theta in enumerate(on_disk["theta"]):
        if abs(theta) >= cfg.bin_width:
            assert on_disk["js_binned"][i] == pytest.approx(LOG2, abs=1e-12)
            assert on_disk["kl_binned"][i] is None and on_disk["kl_binned_infinite"][i] is True  # +inf -> null
        if abs(theta) >= 0.5:  # the k-NN estimate approaches log 2 like k / (2 n |θ|)
            assert on_disk["js_knn"][i] == pytest.approx(LOG2, abs=0.05)
            assert on_disk["kl_knn"][i] > 2
    zero = on_disk["theta"].index(0.0)
    assert on_disk["js_binned"][zero] < 0.2 and abs(on_disk["js_knn"][zero]) < 0.1
    growth = on_disk["kl_knn_growth"]["kl_knn"]
    assert growth == sorted(growth), "the k-NN KL of disjoint supports grows with n"
    for name in WJ_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_divergence_estimators_on_known_cases():
    g = torch.Generator().manual_seed(1)
    y = torch.rand(400, generator=g, dtype=torch.float64)
    p = torch.stack([torch.zeros_like(y), y], 1)
    q = torch.stack([torch.full_like(y, 0.3), torch.rand(400, generator=g, dtype=torch.float64)], 1)
    js, kl = js_kl_binned(p, q, 0.02)
    assert js == pytest.approx(LOG2, abs=1e-12) and kl == math.inf
    js, kl = js_kl_binned(p, p, 0.02)
    assert js == pytest.approx(0, abs=1e-12) and kl == pytest.approx(0, abs=1e-12)
    js, kl = js_kl_knn(p, q, 5)
    assert 0.6 < js <= LOG2 and kl > 2


def test_w_vs_js_rejects_bad_options(tmp_path):
    for bad in (dict(samples=1), dict(k=0), dict(thetas=(math.nan,)), dict(bin_width=0.0)):
        with pytest.raises(_common.ExperimentError):
            run_w_vs_js(WvsJSConfig(out=str(tmp_path), quiet=True, **bad))


# ---- shared: strict JSON, the command line ---------------------------------------------------------------


def test_to_jsonable_writes_non_finite_as_null(tmp_path):
    _common.write_json(tmp_path / "r.json", {"a": math.inf, "b": [math.nan, 1.5, -math.inf], "t": torch.tensor([1.0])})
    assert _strict_load(tmp_path / "r.json") == {"a": None, "b": [None, 1.5, None], "t": [1.0]}


def test_cli_refuses_previous_result_without_force(tmp_path, capsys):
    args = ["w-vs-js", "--out", str(tmp_path), "--samples", "50", "--thetas", "0,0.5", "--no-plots", "--quiet"]
    assert experiment_cli.main(args) == 0
    first = (tmp_path / "report.json").read_text()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exc:
        experiment_cli.main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "already holds a result" in err and "--force" in err
    assert (tmp_path / "report.json").read_text() == first
    assert experiment_cli.main(args + ["--force", "--seed", "1"]) == 0
    assert (tmp_path / "report.json").read_text() != first
    assert (tmp_path / "notes.txt").read_text() == "mine"  # --force removes only the experiment's files


def test_cli_unknown_experiment_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        experiment_cli.main(["gan-zoo", "--out", "x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "gan-zoo" in err and all(name in err for name in EXPERIMENTS)


def test_cli_bad_option_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        experiment_cli.main(["clipping-vs-gp", "--out", str(tmp_path), "--clips", "0.1,abc"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        experiment_cli.main(["clipping-vs-gp", "--out", str(tmp_path), "--steps", "0", "--quiet"])
    assert exc.value.code == 2
    assert "--steps" in capsys.readouterr().err


def test_python_m_pygan_experiment_dispatch():
    proc = subprocess.run([sys.executable, "-m", "pygan", "experiment", "nope"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "clipping-vs-gp" in proc.stderr and "w-vs-js" in proc.stderr


# ---- the command line is derived from the configs; the plots draw what they are given ------------------

def _flags(subcommand: str) -> set[str]:
    parser = experiment_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[subcommand]
    return {s for a in sub._actions for s in a.option_strings if s not in ("-h", "--help")}


# The flag names users type (and docs/experiments.md shows): deriving them must not rename any.
# --gp-weight is --penalty-weight's old spelling, still accepted (hidden from --help) for one release.
CLIPPING_FLAGS = {"--out", "--seed", "--device", "--force", "--no-plots", "--quiet", "--steps", "--surface-steps",
                  "--clips", "--penalty-weight", "--gp-weight", "--width", "--layers", "--surface-width", "--surface-layers",
                  "--batch-size", "--measure-batches", "--grid", "--no-surfaces"}
W_VS_JS_FLAGS = {"--out", "--seed", "--device", "--force", "--no-plots", "--quiet", "--thetas", "--samples",
                 "--bin-width", "--k"}


def test_cli_flags_are_the_config_fields():
    assert _flags("clipping-vs-gp") == CLIPPING_FLAGS
    assert _flags("w-vs-js") == W_VS_JS_FLAGS
    for config, flags in ((ClippingConfig, CLIPPING_FLAGS), (WvsJSConfig, W_VS_JS_FLAGS)):
        for f in dataclasses.fields(config):
            name = f.name.replace("_", "-")
            assert (f"--{name}" in flags or f"--no-{name}" in flags) != (f.metadata.get("cli") is False), f.name


def test_cli_builds_the_config_it_was_given():
    """Every flag lands in its field (tuples as tuples), the rest keep the dataclass defaults."""
    parser = experiment_cli.build_parser()
    args = parser.parse_args(["clipping-vs-gp", "--out", "o", "--clips", "0.5,0.05", "--penalty-weight", "10",
                              "--no-surfaces", "--no-plots", "--quiet", "--steps", "7", "--device", "auto"])
    cfg = experiment_cli.config_from_args(ClippingConfig, args)
    assert cfg == ClippingConfig(out="o", clips=(0.5, 0.05), penalty_weight=10.0, surfaces=False, plots=False,
                                 quiet=True, steps=7, device="auto")
    cfg = experiment_cli.config_from_args(WvsJSConfig, parser.parse_args(["w-vs-js"]))
    assert cfg == WvsJSConfig()  # the defaults, the θ grid included


def test_the_old_gp_weight_spellings_still_work_with_a_warning(capsys):
    """ClippingConfig(gp_weight=...), cfg.gp_weight and --gp-weight: penalty_weight's old names, for one release."""
    with pytest.warns(DeprecationWarning, match="ClippingConfig: the keyword gp_weight= is deprecated"):
        cfg = ClippingConfig(gp_weight=10.0)
    assert cfg == ClippingConfig(penalty_weight=10.0)
    with pytest.warns(DeprecationWarning, match="gp_weight is deprecated; use penalty_weight"):
        assert cfg.gp_weight == 10.0
    with pytest.raises(TypeError, match="got penalty_weight both as penalty_weight and as the deprecated gp_weight"):
        ClippingConfig(penalty_weight=1.0, gp_weight=10.0)
    parser = experiment_cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["clipping-vs-gp", "--help"])
    shown = capsys.readouterr().out
    assert "--penalty-weight" in shown and "--gp-weight" not in shown  # the old flag is hidden from --help
    args = parser.parse_args(["clipping-vs-gp", "--gp-weight", "10"])
    err = capsys.readouterr().err
    assert err == "warning: --gp-weight is deprecated and will be removed in the next release; use --penalty-weight\n"
    assert experiment_cli.config_from_args(ClippingConfig, args) == ClippingConfig(penalty_weight=10.0)
    args = parser.parse_args(["clipping-vs-gp"])  # the new flag's default is kept when the old one is absent
    assert capsys.readouterr().err == "" and experiment_cli.config_from_args(ClippingConfig, args) == ClippingConfig()


@pytest.mark.parametrize("config, bad, message", [
    (ClippingConfig, dict(steps=0), "--steps must be an int >= 1, got 0"),
    (ClippingConfig, dict(width=True), "--width must be an int, got bool"),
    (ClippingConfig, dict(penalty_weight=math.inf), "--penalty-weight must be a finite number >= 0, got inf"),
    (ClippingConfig, dict(clips=(0.1, 0.0)), "--clips must be a finite number > 0, got 0.0"),
    (ClippingConfig, dict(clips=()), "--clips must be one or more positive finite numbers, got none"),
    (ClippingConfig, dict(lr_gp="1e-4"), "--lr-gp must be a real number, got str"),
    (WvsJSConfig, dict(samples=1), "--samples must be an int >= 2, got 1"),
    (WvsJSConfig, dict(samples=10, k=10), "--k must be an int >= 1 and <= 9, got 10"),
    (WvsJSConfig, dict(thetas=(0.0, math.nan)), "--thetas must be a finite number, got nan"),
    (WvsJSConfig, dict(bin_width=-1.0), "--bin-width must be a finite number > 0, got -1.0"),
])
def test_bad_options_are_named_by_their_flag(config, bad, message):
    """The shared checks' messages, as ExperimentError (the CLI's exit code 2), before anything runs."""
    with pytest.raises(_common.ExperimentError) as info:
        config(**bad).validate()
    assert str(info.value) == message


def test_a_config_field_without_help_is_refused():
    @dataclasses.dataclass
    class Bad:
        out: str = "x"
        new_knob: int = 3

    with pytest.raises(TypeError, match="new_knob"):
        experiment_cli.add_config_flags(argparse.ArgumentParser(), Bad)


def test_plots_draw_only_what_they_are_given(tmp_path):
    """plots.surfaces takes its grid extent and points from the caller: it imports no experiment and
    draws no samples of its own."""
    pytest.importorskip("matplotlib")
    import ast

    from pygan.experiments import plots

    tree = ast.parse(Path(plots.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and (m.startswith("pygan.experiments.clipping")
                                              or m.startswith("pygan.experiments.w_vs") or m == "pygan.train.data")}
    values = {"8gaussians": {"clip=0.01": torch.randn(6, 6), "gp": torch.randn(6, 6)},
              "swissroll (depth critic)": {"clip=0.01": torch.zeros(6, 6), "gp": torch.randn(6, 6)}}
    points = {"8gaussians": torch.randn(10, 2), "swissroll": torch.randn(10, 2)}
    plots.surfaces(tmp_path / "s.png", values, points, 2.0, 12, 3)
    assert (tmp_path / "s.png").stat().st_size > 0
