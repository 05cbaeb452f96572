"""The benchmarks still run (correctness checks included) and write their JSON. Times are never asserted."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path


def _bench(tmp_path, only, env=None):
    out = subprocess.run([sys.executable, "-m", "pygan", "bench", "--quick", "--device", "cpu", "--only", only,
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_quick_benchmark_run_writes_results(tmp_path):
    _bench(tmp_path, "clip,optim,penalty")  # emd has its own tests below
    for name in ("clip_cpu.json", "optim_cpu.json"):
        data = json.loads((tmp_path / name).read_text())
        assert data["quick"] is True and data["machine"]["pygan_build"]["loaded"] is True
        cases = {case["case"] for case in data["cases"]}
        assert {"MLP 4x128", "MLP 12x512", "DCGAN-64"} <= cases
        for case in data["cases"]:
            roles = {row["role"] for row in case["rows"]}
            assert {"baseline", "pygan"} <= roles
            assert all(row["median_us"] > 0 for row in case["rows"])
        assert data["targets"]
    penalty = json.loads((tmp_path / "penalty_cpu.json").read_text())
    assert penalty["quick"] is True and penalty["machine"]["pygan_build"]["loaded"] is True
    cases = {case["case"]: case for case in penalty["cases"]}
    parts = {"grads 256x12288": "epilogue", "grads 256x2": "epilogue", "step MLP 3x512": "step",
             "step DCGAN-64": "step", "fd/lazy MLP 3x512": "fd/lazy", "fd/lazy DCGAN-64": "fd/lazy"}
    assert set(parts) <= set(cases)
    for name, part in parts.items():
        case = cases[name]
        assert case["part"] == part
        assert {"baseline", "pygan"} <= {row["role"] for row in case["rows"]}
        assert all(row["median_us"] > 0 for row in case["rows"])
    assert all("speedup_vs_reference" in row for row in cases["grads 256x2"]["rows"])
    assert {row["steps_per_call"] for row in cases["fd/lazy MLP 3x512"]["rows"]} == {1, 4, 16}
    assert penalty["targets"] and all(t["value"] is not None for t in penalty["targets"])


EMD_PARTS = {"square", "rectangular", "1d", "batched", "points", "memory"}


def _check_emd(data, with_pot):
    """Every part ran; pygan's rows were checked (their certificates) and timed; POT's rows were timed
    when POT is installed and reported as skipped, with the reason, when it is not."""
    assert data["quick"] is True and data["machine"]["pygan_build"]["loaded"] is True
    assert data["threads"] >= 1 and data["extras"]["numpy"] and data["settings"]["pot_numItermax"] >= 10**9
    assert (data["extras"]["pot"] is not None) == with_pot
    assert EMD_PARTS <= {case["part"] for case in data["cases"]}
    for case in data["cases"]:
        rows = case["rows"]
        assert [r for r in rows if r["role"] == "pygan"], case["case"]
        assert all(r["median_us"] > 0 for r in rows if r["role"] == "pygan"), case["case"]
        pot = [r for r in rows if r["name"].startswith("POT")]
        assert len(pot) == 1, case["case"]
        if with_pot and case["part"] != "memory":  # the memory case never runs POT (a dense n x n matrix)
            assert pot[0]["median_us"] > 0 and pot[0]["speedup_vs_pot"] == 1.0
            assert all(r["speedup_vs_pot"] > 0 for r in rows if r["median_us"] is not None)
        else:
            assert pot[0]["median_us"] is None and pot[0]["skipped"]
    memory = next(case for case in data["cases"] if case["part"] == "memory")
    assert next(r for r in memory["rows"] if r["role"] == "pygan")["peak_rss_growth_bytes"] > 0
    assert data["targets"]
    if not with_pot:
        assert all(t["value"] is None for t in data["targets"] if "POT" in t["target"])


def test_quick_emd_benchmark(tmp_path):
    _bench(tmp_path, "emd")
    data = json.loads((tmp_path / "emd_cpu.json").read_text())
    # Without POT only the POT rows' checks change (they must be reported skipped); pygan's rows stay checked.
    _check_emd(data, with_pot=importlib.util.find_spec("ot") is not None)


def test_quick_emd_benchmark_without_pot(tmp_path):
    """POT is an optional extra: hidden, its rows are skipped rows, and pygan's rows still run and are
    proven optimal by their own certificates (no baseline needed)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "ot.py").write_text("raise ImportError('hidden by test_bench.py')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(hide), os.environ.get("PYTHONPATH")) if p))
    _bench(tmp_path, "emd", env)
    data = json.loads((tmp_path / "emd_cpu.json").read_text())
    _check_emd(data, with_pot=False)
    assert any("POT" in note for note in data["skipped"])


def test_quick_train_benchmark(tmp_path):
    """bench/train.py: the trainer's step vs the canonical loops. Both cases ran; pygan's rows were
    checked to do the canonical loop's math (same draws, same weights after 2 steps) and timed; the
    docs table renders."""
    _bench(tmp_path, "train")
    path = tmp_path / "train_cpu.json"
    data = json.loads(path.read_text())
    assert data["quick"] is True and data["machine"]["pygan_build"]["loaded"] is True
    assert data["compile"] is False and data["hyperparameters"]["n_critic"] == 5
    cases = {case["case"]: case for case in data["cases"]}
    assert set(cases) == {"wgan-gp MLP 3x512", "wgan MLP 3x512"}
    for case in cases.values():
        assert case["unit"] == "generator step"
        assert {"baseline", "pygan"} <= {row["role"] for row in case["rows"]}
        for row in case["rows"]:
            assert row["median_us"] > 0 and row["steps_per_s"] > 0 and row["speedup_vs_fastest_baseline"] > 0
        exact = [row for row in case["rows"] if row["role"] == "pygan" and "max_abs_param_diff" in row]
        assert len(exact) == 1 and exact[0]["max_abs_param_diff"] <= 1e-5
    fd = next(row for row in cases["wgan-gp MLP 3x512"]["rows"] if "wgan-fd" in row["name"])
    assert fd["check"].startswith("other loss") and 0.1 < fd["update_norm_vs_baseline"] < 10
    try:
        from pygan.bench import tables
    except ImportError:  # a checkout used without installing
        from bench import tables
    text = tables.render(path)
    assert "| wgan-gp MLP 3x512 | **pygan Trainer.train_step** |" in text and "--quick" in text


def test_tables_render_every_committed_result(capsys):
    """`python -m bench.tables` renders every file in bench/results/ (the timing files and
    train_quality_cpu.json, which carries its own table) without raising."""
    try:
        from pygan.bench import tables
    except ImportError:  # a checkout used without installing
        from bench import tables
    results = sorted((Path(__file__).resolve().parent.parent / "bench" / "results").glob("*.json"))
    assert tables.main([str(p) for p in results]) == 0
    text = capsys.readouterr().out
    assert "`train_quality_cpu.json`" in text and "| wgan-gp, λ = 10 |" in text
    assert "`emd_cpu.json`" in text and "`train_cpu.json`" in text
