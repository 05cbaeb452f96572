"""No unverified CUDA kernel by default: the per-op table, the switch, the dispatch rule, and the
CPU-generator refusal under graph capture. (Nothing here needs a GPU: CUDA tensors are stood in for.)"""

import json
import warnings
from pathlib import Path

import pytest
import torch

import pygan
from pygan import _cuda_policy, _internal, ops

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_switch(monkeypatch):
    monkeypatch.delenv("PYGAN_CUDA_KERNELS", raising=False)
    _cuda_policy.set_cuda_kernels(None)
    _cuda_policy._warned.clear()
    yield
    _cuda_policy.set_cuda_kernels(None)
    _cuda_policy._warned.clear()


def test_every_verified_op_names_a_recorded_passing_gpu_run():
    assert set(_cuda_policy.VERIFIED) <= set(_cuda_policy.OPS)
    for op, path in _cuda_policy.VERIFIED.items():
        result = json.loads((ROOT / path).read_text())
        assert result["gpus"] and result["commit"] and result["torch_cuda"], path
        assert result["finished"] and not result["quick"], path
        rows = [r for r in result["rows"] if r["op"] == op and r["backend"] == "cuda"]
        assert rows and all(r["status"] == "pass" for r in rows), (op, path)


def test_default_follows_the_table():
    for op in _cuda_policy.OPS:
        assert _cuda_policy.cuda_kernel_enabled(op) == (op in _cuda_policy.VERIFIED)
        if op not in _cuda_policy.VERIFIED:
            assert "not been verified on a GPU" in _cuda_policy.describe(op)


@pytest.mark.parametrize("value, enabled", [("1", set(_cuda_policy.OPS)), ("all", set(_cuda_policy.OPS)),
                                            ("0", set()), ("none", set()),
                                            ("clip_, interpolate", {"clip_", "interpolate"})])
def test_environment_switch(monkeypatch, value, enabled):
    monkeypatch.setenv("PYGAN_CUDA_KERNELS", value)
    assert {op for op in _cuda_policy.OPS if _cuda_policy.cuda_kernel_enabled(op)} == enabled
    for op in enabled:
        assert "opted in by PYGAN_CUDA_KERNELS" in _cuda_policy.describe(op)


def test_bad_switch_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("PYGAN_CUDA_KERNELS", "clip")
    with pytest.raises(ValueError, match=r"PYGAN_CUDA_KERNELS: expected .* \(unknown: clip\)"):
        _cuda_policy.cuda_kernel_enabled("clip_")
    with pytest.raises(ValueError, match="set_cuda_kernels"):
        _cuda_policy.set_cuda_kernels(["clip_", "nope"])


def test_python_switch_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("PYGAN_CUDA_KERNELS", "1")
    _cuda_policy.set_cuda_kernels(False)
    assert not _cuda_policy.cuda_kernel_enabled("clip_")
    _cuda_policy.set_cuda_kernels("rmsprop_step_")
    assert _cuda_policy.cuda_kernel_enabled("rmsprop_step_") and not _cuda_policy.cuda_kernel_enabled("clip_")
    assert "set_cuda_kernels()" in _cuda_policy.describe("rmsprop_step_")


class _CudaTensor(torch.Tensor):
    """A tensor that says it is on CUDA: all the dispatch rule looks at (no GPU here to make a real one)."""

    @property
    def is_cuda(self):
        return True


def _CudaStandIn():
    return torch.zeros(3).as_subclass(_CudaTensor)


def test_cuda_tensors_take_the_twin_with_one_warning(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    cpu = torch.zeros(3)
    assert ops._native("clip_", [cpu])  # CPU tensors: the compiled kernel
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not ops._native("clip_", [cpu, _CudaStandIn()])
        assert not ops._native("clip_", [_CudaStandIn()])
        assert not ops._native("interpolate", [_CudaStandIn()])
    ours = [w for w in caught if issubclass(w.category, pygan.PyganExtensionWarning)]
    assert len(ours) == 2  # once per op
    assert "clip_ on CUDA tensors runs its pure-PyTorch twin" in str(ours[0].message)
    assert "PYGAN_CUDA_KERNELS=1" in str(ours[0].message)
    monkeypatch.setenv("PYGAN_CUDA_KERNELS", "clip_")
    assert ops._native("clip_", [_CudaStandIn()])
    with pytest.warns(pygan.PyganExtensionWarning, match="chosen by PYGAN_CUDA_KERNELS=clip_"):
        assert not ops._native("grad_penalty", [_CudaStandIn()])


def test_cpu_programs_never_look_at_devices(monkeypatch):
    # Before CUDA is initialised no tensor can be on a GPU: the rule costs one call.
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert ops._native("clip_", [_CudaStandIn()])


def test_a_cpu_generator_is_refused_during_graph_capture(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(ValueError, match="generator: a CPU generator cannot draw for CUDA data while a CUDA graph"):
        _internal.uniform(4, torch.device("cuda"), torch.float32, torch.Generator())
    # CPU data is unaffected (and so is a CUDA generator, which draws on the device).
    assert _internal.uniform(4, torch.device("cpu"), torch.float32, torch.Generator()).shape == (4,)


def test_docs_say_no_cuda_kernel_has_run_on_a_gpu():
    if _cuda_policy.VERIFIED:
        pytest.skip("a GPU run is recorded")
    text = (ROOT / "docs" / "ops.md").read_text()
    assert "No pygan CUDA kernel has run on a GPU yet" in text
    assert "PYGAN_CUDA_KERNELS" in text and "python -m pygan check" in text
