"""Build and load pygan's C++/CUDA extension: the one place that decides how.

The extension is compiled on first use with ``torch.utils.cpp_extension.load`` and ninja, into a
cache directory keyed by everything that changes the binary (torch version, CUDA or not and its
architectures, CPU vector capability, compiler flags, source contents; not where the sources or the
package are installed), so a rebuild happens only when one of those changes.

NOTE: [A verified cache]
Each build writes ``pygan_ext.json`` beside the library: the build key and the SHA-256 of the
library. Before anything is loaded, the library's hash is checked against it in this process (no
subprocess, no lock, no write): a matching library is loaded at once, which also works from a
read-only cache; a truncated, corrupted or empty library (which would crash ``dlopen`` with SIGBUS or
SIGSEGV) is deleted and rebuilt under the build lock (only the link step, when the object files
are intact). The library installed with ``PYGAN_BUILD_EXT=1`` is verified the same way, and refused
when it was built for another torch, or for CUDA architectures that do not cover a visible GPU.

This module knows nothing about the ops: code that must run once the library is loaded (pygan.ops
registers its fake kernels) registers itself with :func:`on_load`. What is compiled and with which
flags is in ``pygan._build_flags``; the build directory, its key and the verification of a cached or
prebuilt library in ``pygan._build_cache``; this module decides and loads.

Environment variables:
    PYGAN_REQUIRE_EXT=1     a failed build is an error instead of a warning plus the reference fallback.
    PYGAN_DISABLE_EXT=1     never build; use the pure-PyTorch reference (one warning says so).
    PYGAN_BUILD_CUDA=1/0    force CUDA sources on (ahead-of-time builds on a machine without a GPU)
                            or off. Default: on when torch is a CUDA build, nvcc is found and a GPU is
                            visible.
    PYGAN_CPU_CAPABILITY    ``native`` (default: the best of avx512/avx2 this CPU has), ``avx512``,
                            ``avx2`` or ``default`` (no vector ISA flags: a portable build).
    PYGAN_BUILD_DIR         where to build (default ``~/.cache/pygan/build/<key>``).
    PYGAN_VERBOSE_BUILD=1   show the compiler's output.
    TORCH_CUDA_ARCH_LIST    CUDA architectures; default: the visible GPUs' (the newest with +PTX),
                            else 7.5;8.0;9.0+PTX (every GPU from Turing on; newer ones through PTX).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

from pygan import _build_cache as cache
from pygan import _build_flags as flags
from pygan._build_cache import MANIFEST as _MANIFEST
from pygan._build_flags import arch_covers, cpu_capability, source_dir, want_cuda

__all__ = ["PyganExtensionWarning", "BuildInfo", "load", "info", "module", "build_prebuilt", "on_load",
           "arch_covers"]

_EXT_NAME = cache.EXT_NAME

# The loader's parts under the names they had when they lived here (tests and tools call them).
_env_flag = flags.env_flag
_build_settings, _cuda_arch_list = flags.build_settings, flags.cuda_arch_list
_build_key, _build_dir, _verified_library = cache.build_key, cache.build_dir, cache.verified_library
_write_manifest, _import_library, _exclusive = cache.write_manifest, cache.import_library, cache.exclusive
_prebuilt_key, _prebuilt_library = cache.prebuilt_key, cache.prebuilt_library


class PyganExtensionWarning(RuntimeWarning):
    """Issued once when pygan runs its pure-PyTorch reference instead of the compiled extension."""


@dataclasses.dataclass
class BuildInfo:
    """What the loader decided and what happened (``python -m pygan info`` prints this)."""

    loaded: bool = False
    error: str | None = None
    build_dir: str | None = None
    library: str | None = None
    cuda_sources: bool = False
    cpu_capability: str = "default"
    compiler: str | None = None
    sources: list[str] = dataclasses.field(default_factory=list)
    cuda_arch: str = ""  # the CUDA architectures the library was built for ("" without CUDA)
    verified: str = ""  # how the library was checked before loading


_lock = threading.Lock()
_info: BuildInfo | None = None
_module = None  # the compiled extension module (csrc/python.cpp) once loaded
_hooks: list = []  # on_load callbacks, run once the library is loaded


def on_load(hook) -> None:
    """Run ``hook()`` once the compiled library is loaded: now if it already is, else right after.

    This is how other modules attach their Python-side registrations (pygan.ops's fake kernels)
    without the loader importing them.

    Args:
        hook: a callable without arguments; called at most once per registration.
    """
    with _lock:
        if _info is None or not _info.loaded:
            _hooks.append(hook)
            return
    hook()


def _compile(settings: dict, build_dir: Path, verbose: bool):
    """Compile (or reuse, if nothing changed) the extension in build_dir, and import it.

    Returns:
        The extension module (csrc/python.cpp); importing it registers the ops under torch.ops.pygan.
    """
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        raise RuntimeError("ninja is not installed (pip install ninja)")
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler found (looked for {compiler!r}; set CXX)")
    if settings["cuda"]:
        flags.fix_cuda_home()
        # torch reads the architectures from the environment; ours must win over a stale value.
        os.environ["TORCH_CUDA_ARCH_LIST"] = settings["arch"]
    key = cache.build_key(settings)
    build_dir.mkdir(parents=True, exist_ok=True)
    with cache.exclusive(build_dir.with_name(build_dir.name + ".lock")):
        # We hold the OS lock, so a lock file torch's FileBaton left behind is stale (its holder died):
        # without this a killed build would make every later import wait forever.
        with contextlib.suppress(FileNotFoundError):
            (build_dir / "lock").unlink()
        library = build_dir / f"{_EXT_NAME}.so"
        if library.exists() and cache.verified_library(build_dir, key) is None:
            # Truncated, corrupted, empty or unrecorded: ninja judges by timestamps and would keep it,
            # and loading it can crash the interpreter. Delete it so ninja links it again.
            print(f"pygan: the cached {library} does not match its recorded hash; rebuilding it",
                  file=sys.stderr, flush=True)
            with contextlib.suppress(FileNotFoundError):
                (build_dir / _MANIFEST).unlink()
            library.unlink()
        elif not library.exists():
            print(f"pygan: compiling the C++{'/CUDA' if settings['cuda'] else ''} extension "
                  f"(first use only) in {build_dir} ...", file=sys.stderr, flush=True)
        # Builds only what changed, then imports the module, which registers the ops.
        module = cpp_extension.load(
            name=_EXT_NAME,
            sources=settings["sources"],
            extra_cflags=settings["cflags"],
            extra_cuda_cflags=settings["cuda_flags"],
            extra_ldflags=settings["ldflags"],
            extra_include_paths=settings["include_paths"],
            build_directory=str(build_dir),
            with_cuda=settings["cuda"],
            is_python_module=True,
            verbose=verbose,
        )
        if cache.verified_library(build_dir, key) is None:
            cache.write_manifest(build_dir, key, settings["arch"])
        return module


def _compile_and_load(result: BuildInfo):
    """Load the prebuilt library or JIT-compile one; fills `result` and returns the module."""
    result.compiler = os.environ.get("CXX", "c++")
    prebuilt, refused = cache.prebuilt_library()
    if prebuilt is not None:
        result.build_dir, result.library = str(prebuilt.parent), str(prebuilt)
        result.cpu_capability = "as built at install time"
        result.cuda_arch = json.loads((prebuilt.parent / _MANIFEST).read_text()).get("arch", "")
        result.verified = "prebuilt library, SHA-256 matches"
        module = cache.import_library(prebuilt)
        result.cuda_sources = torch._C._dispatch_has_kernel_for_dispatch_key("pygan::clip_", "CUDA")
        result.loaded = True
        return module
    if refused:
        print(f"pygan: not using the prebuilt library: {refused}; building one", file=sys.stderr, flush=True)
    settings = flags.build_settings()
    if settings["cuda"]:
        flags.check_arch_covers(settings["arch"])
    build_dir = cache.build_dir(settings)
    result.build_dir = str(build_dir)
    result.cuda_sources = settings["cuda"]
    result.cuda_arch = settings["arch"]
    result.cpu_capability = settings["capability"]
    result.sources = settings["sources"]
    library = cache.verified_library(build_dir, cache.build_key(settings))
    if library is not None:  # NOTE: [A verified cache]: no lock, no ninja, nothing written
        result.verified = "cached build, SHA-256 matches"
        module = cache.import_library(library)
    else:
        module = _compile(settings, build_dir, verbose=bool(flags.env_flag("PYGAN_VERBOSE_BUILD")))
        result.verified = "built (or checked by ninja) and recorded"
    result.library = module.__file__
    result.loaded = True
    return module


def build_prebuilt(target: Path) -> Path:
    """Compile the extension into ``target`` (``pip install`` with PYGAN_BUILD_EXT=1 calls this).

    Args:
        target: the directory to hold ``pygan_ext.so`` and ``key.txt`` (the torch it was built for).

    Returns:
        The library's path.
    """
    settings = flags.build_settings()
    library = Path(_compile(settings, cache.build_dir(settings), verbose=True).__file__)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(library, target / library.name)
    (target / "key.txt").write_text(cache.prebuilt_key() + "\n")  # for people; the manifest is what is checked
    cache.write_manifest(target, cache.prebuilt_key(), settings["arch"] if settings["cuda"] else "")
    return target / library.name


def load() -> bool:
    """Build (if needed) and load the extension once per process.

    Returns:
        True when the compiled ops are registered under ``torch.ops.pygan``; False when pygan falls
        back to ``pygan.reference`` (after one ``PyganExtensionWarning``).

    Raises:
        RuntimeError: the build failed and ``PYGAN_REQUIRE_EXT=1`` is set.
    """
    global _info, _module
    if _info is not None:
        return _info.loaded
    with _lock:
        if _info is not None:
            return _info.loaded
        result = BuildInfo()
        if flags.env_flag("PYGAN_DISABLE_EXT"):
            result.error = "disabled by PYGAN_DISABLE_EXT=1"
        else:
            try:
                _module = _compile_and_load(result)
            except Exception as exc:  # any build/load failure means the fallback (or an error)
                result.error = f"{type(exc).__name__}: {exc}"
        if not result.loaded and flags.env_flag("PYGAN_REQUIRE_EXT"):
            _info = None
            raise RuntimeError(
                "pygan: the C++ extension is required (PYGAN_REQUIRE_EXT=1) but could not be loaded: "
                f"{result.error}"
            )
        if not result.loaded:
            warnings.warn(
                "pygan: the C++/CUDA extension is not available, so pygan runs its pure-PyTorch "
                f"reference implementation (correct but slower). Reason: {result.error}. "
                "Run `python -m pygan info` for details; set PYGAN_REQUIRE_EXT=1 to make this an error.",
                PyganExtensionWarning,
                stacklevel=3,
            )
        _info = result
        hooks = list(_hooks) if result.loaded else []
        _hooks.clear()
    for hook in hooks:  # outside the lock: a hook may call load() or on_load()
        hook()
    return result.loaded


def module():
    """The compiled extension module (fast eager entry points), or None on the fallback path."""
    return _module


def info() -> BuildInfo:
    """The loader's decisions and outcome (triggers the build on first call)."""
    load()
    assert _info is not None
    return _info
