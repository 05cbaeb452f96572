"""The benchmarks still run (correctness checks included) and write their JSON. Times are never asserted."""

import json
import subprocess
import sys


def test_quick_benchmark_run_writes_results(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pygan", "bench", "--quick", "--device", "cpu",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
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
