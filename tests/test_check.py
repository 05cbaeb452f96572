"""`python -m pygan check`: every op x backend against its twin, one row each, the exit status."""

import json
import os
import subprocess
import sys

import pytest
import torch

from pygan import check, reference


def run_check(*args, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYGAN_")}
    return subprocess.run([sys.executable, "-m", "pygan", "check", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_quick_cpu_check_passes_with_one_row_per_op(tmp_path):
    out = run_check("--device", "cpu", "--quick", "--threads", "1", "--json", str(tmp_path / "check.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "check.json").read_text())
    assert result["passed"] and result["quick"]
    rows = {(r["op"], r["backend"]): r for r in result["rows"]}
    assert set(rows) == {(op, "cpu") for op in check.OPS}
    for row in rows.values():
        assert row["status"] == "pass", row
        assert row["cases"] > 0 and 0 <= row["worst"] <= 1
    for op in check.OPS:  # the table printed, one line per row
        assert any(line.startswith(op) and " cpu " in line and "pass" in line for line in out.stdout.splitlines())
    assert result["torch"] == torch.__version__ and result["extension_loaded"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_this_machine_lacks_is_exit_2():
    out = run_check("--device", "cuda", "--quick")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("check: --device cuda: no GPU is available")
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_arguments_are_exit_2(tmp_path):
    assert check.main(["--only", "clamp"]) == 2
    assert check.main(["--device", "tpu"]) == 2
    assert check.main(["--device", "cpu", "--json", str(tmp_path / "missing" / "x.json")]) == 2


def test_a_wrong_kernel_fails_with_its_largest_difference(monkeypatch):
    # The check must be able to fail: a twin that clamps to a slightly different bound stands in for
    # a kernel that does.
    real_clip = reference.clip_

    def off_by_a_bit(tensors, lo, hi):
        real_clip(tensors, lo, None if hi is None else hi * 0.999)

    monkeypatch.setattr(reference, "clip_", off_by_a_bit)
    (row,) = check.run_checks(["cpu"], ["clip_"], quick=True, isolate=False)
    assert row.status == "fail"
    assert "bit-exact" in row.detail and row.worst_diff > 0 and row.worst_case
    assert "fail" in check._format_row(row).lower() and "largest |diff|" in check._format_row(row)


def test_a_failing_or_raising_op_never_stops_the_others(monkeypatch, capsys):
    def broken(c):
        def wrong():
            raise check._Failure("made up")

        def raises():
            raise RuntimeError("kernel exploded")

        yield "wrong", wrong
        yield "raises", raises

    def cannot_even_build_cases(c):
        raise ValueError("bad case table")

    monkeypatch.setitem(check._CASES, "clip_", broken)
    monkeypatch.setitem(check._CASES, "rmsprop_step_", cannot_even_build_cases)
    rows = check.run_checks(["cpu"], ["clip_", "rmsprop_step_", "interpolate"], quick=True, isolate=False)
    assert [r.status for r in rows] == ["fail", "fail", "pass"]
    assert rows[0].cases == 2 and "made up" in rows[0].detail and "1 more" in rows[0].detail
    assert "bad case table" in rows[1].detail
    assert check.main(["--device", "cpu", "--quick", "--only", "clip_,interpolate"]) == 1
    assert "1 passed, 1 failed" in capsys.readouterr().out


def test_an_op_checked_in_a_child_process():
    # The path every CUDA op takes (so that a crash is that op's failure), exercised on the CPU.
    row = check._run_isolated("interpolate", "cpu", quick=True, timeout=600)
    assert row.status == "pass" and row.cases > 0, row


def test_layouts_cover_misaligned_storage():
    t = torch.randn(4, 6, dtype=torch.float32)
    layouts = dict(check._layouts(t))
    assert {"contiguous", "transposed", "strided", "offset 1 element", "offset 16 bytes"} <= set(layouts)
    for name, view in layouts.items():
        assert torch.equal(view, t), name
    assert layouts["offset 1 element"].data_ptr() % 16 != 0
    assert layouts["offset 16 bytes"].storage_offset() == 4
    assert "channels_last" in dict(check._layouts(torch.randn(2, 3, 4, 5)))
