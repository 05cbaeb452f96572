"""The benchmarks still run (correctness checks included) and write their JSON. Times are never asserted."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from pygan.bench import _harness as H, tables
except ImportError:  # a checkout used without installing
    from bench import _harness as H, tables


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


EMD_PARTS = {"square", "rectangular", "dotmark", "small", "minibatch", "1d", "batched", "points", "memory"}


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
        pot = [r for r in rows if r["name"].startswith("POT") and r["role"] != "reference"]
        assert len(pot) == 1, case["case"]
        if with_pot and case["part"] != "memory":  # the memory case never runs POT (a dense n x n matrix)
            assert pot[0]["median_us"] > 0 and pot[0]["speedup_vs_pot"] == 1.0
            assert all(r["speedup_vs_pot"] > 0 for r in rows if r["median_us"] is not None)
        else:
            assert pot[0]["median_us"] is None and pot[0]["skipped"]
    # The small part's reference rows: each library's compiled core without its Python wrapper.
    small = [case for case in data["cases"] if case["part"] == "small"]
    assert small and all({r["name"] for r in case["rows"] if r["role"] == "reference"}
                         == ({"pygan core (extension call, 1 thread)"} | ({"POT emd_c (its compiled core, 1 thread)"}
                                                                          if with_pot else set()))
                         for case in small)
    # The minibatch part's reference row: the same problem forced onto the network simplex, which
    # pivots where the assignment solver (the probe's choice at the quick size) augments at most n
    # paths.
    for case in (c for c in data["cases"] if c["part"] == "minibatch"):
        assert {r["name"] for r in case["rows"] if r["role"] == "reference"} == {"pygan simplex path (1 thread)"}
        counts = case["iterations"]
        assert counts["default"] <= case["n"] < counts["simplex path"]
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
    text = tables.render(path)
    assert "| wgan-gp MLP 3x512 | **pygan Trainer.train_step** |" in text and "--quick" in text


def test_tables_render_every_committed_result(capsys):
    """`python -m bench.tables` renders every file in bench/results/ (the timing files and
    train_quality_cpu.json, which carries its own table) without raising."""
    results = sorted((Path(__file__).resolve().parent.parent / "bench" / "results").glob("*.json"))
    assert tables.main([str(p) for p in results]) == 0
    text = capsys.readouterr().out
    assert "`train_quality_cpu.json`" in text and "| wgan-gp, λ = 10 |" in text
    assert "`emd_cpu.json`" in text and "`train_cpu.json`" in text


# ---- the harness itself (fast, no timing worth reading) ---------------------------------------------------


def _candidate(name, role, value, calls=None, **kw):
    import torch

    def run(state):
        state["out"] = torch.tensor([value])
        if calls is not None:
            calls.append(name)

    return H.Candidate(name, role, dict, run, lambda st: [st["out"]], **kw)


def test_a_wrong_candidate_fails_before_anything_is_timed(monkeypatch):
    timed = []
    monkeypatch.setattr(H, "time_interleaved", lambda *a, **k: timed.append(1))
    cands = [_candidate("torch", "baseline", 1.0), _candidate("fast but wrong", "pygan", 2.0)]
    with pytest.raises(AssertionError, match="fast but wrong"):
        H.run_case("case", cands, "cpu", quick=True)
    assert not timed


def test_check_candidates_verify_and_reference():
    seen = []
    cands = [_candidate("a", "baseline", 1.0), _candidate("b", "pygan", 1.0, verify=lambda st: seen.append("b")),
             _candidate("copy", "reference", 5.0, check=False)]
    first = H.check_candidates("case", cands, "cpu", 0.0, 0.0)
    assert len(first) == 3 and all(t >= 0 for t in first) and seen == ["b"]
    import torch

    with pytest.raises(AssertionError, match="b vs the closed form"):
        H.check_candidates("case", cands[1:2], "cpu", 0.0, 0.0, [torch.tensor([3.0])], "the closed form")


def test_round_robin_interleaves_and_counts():
    calls = []
    times = H.round_robin([lambda: calls.append("x"), lambda: calls.append("y")], "cpu", [2, 1], [3, 1])
    assert [len(t) for t in times] == [3, 1]
    assert calls == ["x", "x", "y", "x", "x", "x", "x"]  # round 1: x (2 calls), y; rounds 2-3: x only
    calls.clear()
    times = H.round_robin([lambda: calls.append("x"), lambda: calls.append("y")], "cpu", [2, 1], [2, 1],
                          [1, 0])
    assert [len(t) for t in times] == [2, 1]
    assert calls == ["x", "x", "x", "y", "x", "x", "x"]  # each x sample: one untimed call, then 2
    t = H.summarize([1.0, 2.0, 3.0, 4.0, 5.0], 7)
    assert (t.median_us, t.q1_us, t.q3_us, t.samples, t.inner) == (3.0, 2.0, 4.0, 5, 7)


def test_finish_case_ratios():
    case = {"case": "c", "rows": [{"name": "slow", "role": "baseline", "median_us": 4.0},
                                  {"name": "fast", "role": "baseline", "median_us": 2.0},
                                  {"name": "pygan", "role": "pygan", "median_us": 1.0},
                                  {"name": "POT", "role": "baseline", "median_us": None, "skipped": "no POT"}]}
    H.finish_case(case, "slow", "speedup_vs_slow")
    rows = {r["name"]: r for r in case["rows"]}
    assert case["fastest_baseline"] == "fast"
    assert rows["pygan"]["speedup_vs_fastest_baseline"] == 2.0 and rows["pygan"]["speedup_vs_slow"] == 4.0
    assert "speedup_vs_fastest_baseline" not in rows["POT"]
    alone = H.finish_case({"rows": [{"name": "p", "role": "pygan", "median_us": 1.0}]}, "POT", "vs_pot")
    assert alone["fastest_baseline"] is None and alone["rows"][0]["speedup_vs_fastest_baseline"] is None
    assert alone["rows"][0]["vs_pot"] is None


def test_results_go_to_a_fresh_folder_unless_published(tmp_path, monkeypatch):
    """A run (--quick above all) never overwrites the tracked bench/results/ unless told to."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    first = H.parse_args(["--quick"], "bench", with_only=False).out
    assert first.parent == Path("pygan-bench-results") and not first.exists()
    first.mkdir(parents=True)
    second = H.parse_args([], "bench", with_only=False).out
    assert second != first and second.parent == first.parent and not second.exists()
    assert H.parse_args(["--publish"], "bench", with_only=False).out == Path("bench") / "results"
    assert H.parse_args(["--out", "bench/results"], "bench", with_only=False).out == Path("bench/results")
    for argv in (["--publish", "--quick"], ["--publish", "--out", "x"]):
        with pytest.raises(SystemExit) as exc:
            H.parse_args(argv, "bench", with_only=False)
        assert exc.value.code == 2
    monkeypatch.chdir(tmp_path / "bench")  # not a checkout's root: nothing to publish into
    with pytest.raises(SystemExit) as exc:
        H.parse_args(["--publish"], "bench", with_only=False)
    assert exc.value.code == 2


def test_bench_quick_leaves_tracked_results_alone(tmp_path):
    """`python -m pygan bench --quick` in a checkout writes under ./pygan-bench-results/, not bench/results/."""
    (tmp_path / "bench" / "results").mkdir(parents=True)
    tracked = tmp_path / "bench" / "results" / "clip_cpu.json"
    tracked.write_text("{}")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-m", "pygan", "bench", "--quick", "--device", "cpu", "--only", "clip",
                          "--threads", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert tracked.read_text() == "{}"
    written = list((tmp_path / "pygan-bench-results").glob("*/clip_cpu.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["quick"] is True


def test_points_memory_child_certifies_its_call():
    """bench/_points_memory.py (the emd memory part's child process) on a small problem."""
    root = Path(__file__).resolve().parent.parent
    child = root / "bench" / "_points_memory.py"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(child), json.dumps({"n": 300, "seed": 3, "threads": 1})],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["status"] == "optimal" and res["seconds"] > 0 and res["peak_rss_growth_bytes"] >= 0
    assert abs(res["cost"] - res["cost_log"]) <= 1e-9 * res["cost"]
    assert res["primal_residual"] <= 1e-9 and res["dual_violation"] <= 1e-9 * res["max_cost"]
    assert res["duality_gap"] <= 1e-9 * res["max_cost"]


def test_train_quality_leaves_tracked_results_alone(tmp_path, monkeypatch):
    """bench/train_quality.py without --publish writes its JSON and pictures to a fresh folder."""
    pytest.importorskip("matplotlib")
    try:
        from pygan.bench import train_quality
    except ImportError:  # a checkout used without installing
        from bench import train_quality
    tracked = Path(train_quality.ROOT) / "bench" / "results" / "train_quality_cpu.json"
    before = tracked.read_bytes() if tracked.exists() else None
    monkeypatch.chdir(tmp_path)
    rc = train_quality.main(["--collect-only", "--losses", "wgan", "--datasets", "8gaussians", "--seeds", "0",
                             "--runs-dir", str(tmp_path / "runs")])
    assert rc == 1  # nothing was run, so the one run is unfinished; the files are still written
    written = list((tmp_path / "pygan-bench-results").glob("*/train_quality_cpu.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["runs"]
    assert (tracked.read_bytes() if tracked.exists() else None) == before


def test_a_cuda_run_times_the_kernels_not_the_twins():
    try:
        from pygan.bench import use_cuda_kernels
    except ImportError:  # a checkout used without installing
        from bench import use_cuda_kernels

    env = {}
    assert use_cuda_kernels("cpu", env) is None and env == {}
    assert "PYGAN_CUDA_KERNELS=1" in use_cuda_kernels("cuda", env)
    assert env == {"PYGAN_CUDA_KERNELS": "1"}
    chosen = {"PYGAN_CUDA_KERNELS": "0"}  # the user's own choice stands
    assert use_cuda_kernels("cuda:0", chosen) is None and chosen == {"PYGAN_CUDA_KERNELS": "0"}


def test_tables_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    """A missing file or one that is not a result gives exit 2 and one line on stderr; --help the usage."""
    assert tables.main(["--help"]) == 0
    assert "Usage" in capsys.readouterr().out
    assert tables.main([str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.json" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert tables.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a benchmark result" in err
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert tables.main([str(other)]) == 2
    assert "not a benchmark result" in capsys.readouterr().err
