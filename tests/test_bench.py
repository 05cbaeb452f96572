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
