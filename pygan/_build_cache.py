"""Where the loader builds, and the verification of what it finds there (NOTE: [A verified cache] in
:mod:`pygan._build`): the build key and directory, the manifest with the library's SHA-256, the
inter-process build lock, and the library installed with ``PYGAN_BUILD_EXT=1``.

Internal API of the loader (used by ``pygan._build`` only). Nothing here ever dlopens except
:func:`import_library`, which is given a verified file; imports nothing of pygan but the loader's
other part, ``pygan._build_flags``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from pygan import _build_flags as flags

__all__ = ["EXT_NAME", "MANIFEST", "build_key", "build_dir", "verified_library", "write_manifest", "import_library",
           "exclusive", "prebuilt_key", "prebuilt_dir", "prebuilt_library"]

EXT_NAME = "pygan_ext"
MANIFEST = f"{EXT_NAME}.json"  # beside the library: its build key, size and SHA-256


def build_key(settings: dict) -> str:
    """Everything that changes the binary, and nothing that depends on where things are installed:
    the flags, the CUDA architectures, torch, Python, and every source file's path inside the source
    tree and its contents (so a checkout and an installed copy of the same sources share one build)."""
    h = hashlib.sha256()
    for key in ("cflags", "ldflags", "cuda_flags", "arch"):
        h.update(repr(settings[key]).encode())
    h.update(torch.__version__.encode())
    root = Path(settings["source_dir"])
    for path in sorted(root.rglob("*")):
        if path.suffix in (".cpp", ".cu", ".h", ".cuh"):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    flavour = f"cu{torch.version.cuda.replace('.', '')}" if settings["cuda"] else "cpu"
    return (f"torch{torch.__version__.split('+')[0]}-{flavour}-{settings['capability']}"
            f"-py{sys.version_info.major}{sys.version_info.minor}-{h.hexdigest()[:12]}")


def build_dir(settings: dict) -> Path:
    """A directory keyed by everything that changes the binary, so versions never overwrite each other."""
    if os.environ.get("PYGAN_BUILD_DIR"):
        return Path(os.environ["PYGAN_BUILD_DIR"]).expanduser()
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pygan" / "build"
    return root / build_key(settings)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_library(directory: Path, key: str) -> Path | None:
    """The library in `directory` if its manifest names `key` and its SHA-256 matches, else None.

    Reads only (no lock, no subprocess), so a read-only cache works; nothing here ever dlopens.
    """
    library, manifest = directory / f"{EXT_NAME}.so", directory / MANIFEST
    try:
        recorded = json.loads(manifest.read_text())
        if recorded.get("key") != key or library.stat().st_size != recorded.get("size"):
            return None
        return library if _sha256(library) == recorded.get("sha256") else None
    except (OSError, ValueError, AttributeError):
        return None


def write_manifest(directory: Path, key: str, arch: str) -> None:
    """Record the library's key and hash (atomically: a reader sees the old manifest or the new one)."""
    library = directory / f"{EXT_NAME}.so"
    data = {"key": key, "arch": arch, "size": library.stat().st_size, "sha256": _sha256(library)}
    tmp = directory / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, directory / MANIFEST)


def import_library(library: Path):
    """Import the extension module from a verified library file (this is the dlopen)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(EXT_NAME, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """An inter-process lock that the OS releases if its holder dies (unlike a bare lock file)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prebuilt_key() -> str:
    """The key of a library installed with PYGAN_BUILD_EXT=1: the torch (and CUDA) and Python it is for."""
    flavour = f"cu{torch.version.cuda}" if torch.version.cuda else "cpu"
    return f"torch {torch.__version__} {flavour} python {sys.version_info.major}.{sys.version_info.minor}"


def prebuilt_dir() -> Path:
    """Where ``pip install`` with PYGAN_BUILD_EXT=1 puts the library (``pygan/_prebuilt``)."""
    return Path(__file__).resolve().parent / "_prebuilt"


def prebuilt_library(capabilities: list[tuple[int, int]] | None = None) -> tuple[Path | None, str]:
    """The library compiled at install time (PYGAN_BUILD_EXT=1), if it is intact, was built for this
    torch and covers every visible GPU.

    Args:
        capabilities: the GPUs to cover (default: the visible ones).

    Returns:
        (the library or None, why not: "" when there is none at all).
    """
    prebuilt = prebuilt_dir()
    if not (prebuilt / f"{EXT_NAME}.so").is_file():
        return None, ""
    library = verified_library(prebuilt, prebuilt_key())
    if library is None:
        return None, "the prebuilt library is not for this torch/python, or its hash does not match"
    arch = json.loads((prebuilt / MANIFEST).read_text()).get("arch", "")
    if arch:
        for cap in flags.visible_capabilities() if capabilities is None else capabilities:
            if not flags.arch_covers(arch, cap):
                return None, (f"the prebuilt library was built for CUDA {arch}, which does not cover "
                              f"a visible GPU of compute capability {cap[0]}.{cap[1]}")
    return library, ""
