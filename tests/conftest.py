"""Shared test setup: the compiled extension is required, and every op can run on either backend."""

import os

# Tests must exercise the compiled kernels, never silently the fallback.
os.environ.setdefault("PYGAN_REQUIRE_EXT", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import pygan  # noqa: E402
from pygan import ops  # noqa: E402


@pytest.fixture(params=["ext", "reference"])
def backend(request, monkeypatch):
    """Run a test through the compiled op ("ext") and through the pure-PyTorch fallback ("reference")."""
    if request.param == "reference":
        monkeypatch.setattr(ops, "_use_ext", lambda: False)
    else:
        assert pygan._build.load(), "the extension must build for the tests"
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _extension_loaded():
    """Build/load the extension once up front, so tests calling torch.ops.pygan.* directly find the ops."""
    assert pygan._build.load(), "the extension must build for the tests"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
