"""Shared test setup: the compiled extension is required, and every op can run on either backend."""

import os

# Tests must exercise the compiled kernels, never silently the fallback.
os.environ.setdefault("PYGAN_REQUIRE_EXT", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import pygan  # noqa: E402
import pygan._build  # noqa: E402


@pytest.fixture
def no_extension(monkeypatch):
    """Run the test as on a machine where the extension cannot be built: pygan's loader reports it
    unavailable, so the ops (and what is built on them: penalties, optim) and pygan.ot take their
    pure-PyTorch fallbacks. The one way tests disable the extension inside the test process; a test
    of the environment variable itself runs a subprocess with ``PYGAN_DISABLE_EXT=1``."""
    monkeypatch.setattr(pygan._build, "load", lambda: False)


@pytest.fixture(params=["ext", "reference"])
def backend(request):
    """Run a test through the compiled op ("ext") and through the pure-PyTorch fallback ("reference")."""
    if request.param == "reference":
        request.getfixturevalue("no_extension")
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
