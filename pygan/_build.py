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
registers its fake kernels) registers itself with :func:`on_load`.

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
import hashlib
import json
import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["PyganExtensionWarning", "BuildInfo", "load", "info", "module", "build_prebuilt", "on_load",
           "arch_covers"]

_EXT_NAME = "pygan_ext"


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
_MANIFEST = f"{_EXT_NAME}.json"


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


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")


def source_dir() -> Path:
    """The C++/CUDA sources: ``pygan/csrc`` in an installed wheel, ``<repo>/csrc`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "csrc", here.parent / "csrc"):
        if (candidate / "pygan.cpp").is_file():
            return candidate
    raise FileNotFoundError(f"pygan's C++ sources (csrc/pygan.cpp) were not found next to {here}")


def want_cuda() -> bool:
    """Whether to compile the CUDA sources (see the module docstring for the rule)."""
    forced = _env_flag("PYGAN_BUILD_CUDA")
    if forced is not None:
        return forced
    from torch.utils.cpp_extension import CUDA_HOME

    return bool(torch.version.cuda) and CUDA_HOME is not None and torch.cuda.is_available()


def cpu_capability() -> str:
    """The x86 vector ISA the CPU kernels are compiled for: ``avx512``, ``avx2`` or ``default``."""
    requested = os.environ.get("PYGAN_CPU_CAPABILITY", "native").strip().lower()
    if requested not in ("native", "avx512", "avx2", "default"):
        raise ValueError(
            f"PYGAN_CPU_CAPABILITY must be one of native, avx512, avx2, default; got {requested!r}"
        )
    if requested != "native":
        return requested
    if platform.machine().lower() in ("x86_64", "amd64"):
        cap = torch.backends.cpu.get_cpu_capability().lower()  # what torch itself dispatches to
        if cap.startswith("avx512"):
            return "avx512"
        if cap == "avx2":
            return "avx2"
    return "default"


# Flags that make ATen's at::vec::Vectorized use the ISA (as torch's own per-capability kernel builds do).
_CAPABILITY_FLAGS = {
    "avx512": ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512", "-mavx512f", "-mavx512bw",
               "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c"],
    "avx2": ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma", "-mf16c"],
    "default": [],
}


def _fix_cuda_home() -> None:
    """Point torch at a real CUDA toolkit when its guess is wrong.

    torch guesses CUDA_HOME from `which nvcc` when the variable is unset; where nvcc is a wrapper
    script (e.g. /usr/local/bin/nvcc) that gives /usr/local and the link fails (-lcudart not found).
    """
    from torch.utils import cpp_extension

    def is_toolkit(path) -> bool:
        return path is not None and (Path(path) / "include" / "cuda_runtime.h").is_file()

    if not is_toolkit(cpp_extension.CUDA_HOME):
        for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
            if is_toolkit(candidate):
                cpp_extension.CUDA_HOME = candidate
                os.environ["CUDA_HOME"] = candidate
                return


# Without a visible GPU (an ahead-of-time build): machine code for Turing (T4), Ampere (A100, and by
# binary compatibility A10, L4, RTX 30/40) and Hopper (H100/H200), plus Hopper's PTX, which the driver
# compiles at load time for any newer GPU (B200, RTX 50). A list without +PTX crashed every launch on
# a GPU it did not name ("no kernel image is available").
_DEFAULT_ARCH = "7.5;8.0;9.0+PTX"


def _visible_capabilities() -> list[tuple[int, int]]:
    if not torch.cuda.is_available():
        return []
    return sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})


def _cuda_arch_list() -> str:
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    archs = _visible_capabilities()
    if archs:
        # The newest with +PTX, so the library also runs on a newer GPU it is later moved to.
        return ";".join(f"{major}.{minor}" for major, minor in archs) + "+PTX"
    return _DEFAULT_ARCH


def _parse_arch(entry: str) -> tuple[int, int, bool, bool]:
    """``"8.6"`` -> (8, 6, ptx=False, specific=False); ``"9.0+PTX"`` -> ptx=True; ``"9.0a"`` -> specific."""
    entry = entry.strip()
    ptx = entry.upper().endswith("+PTX")
    if ptx:
        entry = entry[:-4]
    specific = entry[-1:].isalpha()  # sm_90a / sm_100f: only that exact chip
    if specific:
        entry = entry.rstrip("abcdefghijklmnopqrstuvwxyz")
    major, _, minor = entry.partition(".")
    return int(major), int(minor or 0), ptx, specific


def arch_covers(arch_list: str, capability: tuple[int, int]) -> bool:
    """Whether a library built for ``arch_list`` (TORCH_CUDA_ARCH_LIST syntax) runs on a GPU of
    compute ``capability``: machine code for the same major version and a minor version not above
    the GPU's (sm_80 runs on 8.6 and 8.9), the exact version for arch-specific entries (9.0a), or PTX
    for a version not above the GPU's (the driver compiles it at load time).

    Args:
        arch_list: e.g. ``"8.0;9.0+PTX"`` (``;`` or spaces between entries).
        capability: (major, minor), e.g. ``torch.cuda.get_device_capability()``.

    Returns:
        True when some entry covers the GPU.
    """
    major, minor = capability
    for entry in arch_list.replace(";", " ").split():
        try:
            a_major, a_minor, ptx, specific = _parse_arch(entry)
        except ValueError:
            continue
        if specific:
            if (a_major, a_minor) == (major, minor):
                return True
        elif a_major == major and a_minor <= minor:
            return True
        if ptx and (a_major, a_minor) <= (major, minor):
            return True
    return False


def _check_arch_covers(arch_list: str) -> None:
    """Refuse an architecture list that leaves out a visible GPU (every launch would fail there)."""
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        cap = torch.cuda.get_device_capability(i)
        if not arch_covers(arch_list, cap):
            raise RuntimeError(
                f"TORCH_CUDA_ARCH_LIST={arch_list!r} does not cover cuda:{i} "
                f"({torch.cuda.get_device_name(i)}, compute capability {cap[0]}.{cap[1]}); add "
                f"{cap[0]}.{cap[1]} or unset it to build for the visible GPUs")


def _build_settings() -> dict:
    src = source_dir()
    cuda = want_cuda()
    # csrc/*.cpp (schemas, argument checks, autograd kernels, the Python module) and csrc/cpu/*.cpp
    # (CPU kernels).
    # csrc/emd/*.cpp is the torch-free EMD solver core.
    sources = [*sorted(src.glob("*.cpp")), *sorted((src / "cpu").glob("*.cpp")),
               *sorted((src / "emd").glob("*.cpp"))]
    if cuda:
        sources += sorted((src / "cuda").glob("*.cu"))
    cap = cpu_capability()
    # No -std flag: torch adds the standard its headers need (C++17 for 2.13, C++20 for 2.14).
    cflags = ["-O3", "-fno-math-errno", *_CAPABILITY_FLAGS[cap]]
    ldflags = []
    # NOTE: at::parallel_for is an inline template; with torch's OpenMP backend it is a bare
    # `#pragma omp parallel`, which without -fopenmp compiles to a serial loop. Linking with -fopenmp
    # records a dependency on libgomp.so.1, the SONAME of the libgomp torch loads (its own bundled
    # copy in pip wheels), so the extension shares torch's thread pool rather than starting a second.
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        cflags.append("-fopenmp")
        ldflags.append("-fopenmp")
    cuda_flags = ["-O3", "--expt-relaxed-constexpr"]
    include_paths = [str(src)]
    if cuda:
        cuda_flags.append("-DPYGAN_WITH_CUDA")
        cflags.append("-DPYGAN_WITH_CUDA")
        # torch's CUDA headers include cuSPARSE/cuBLAS headers that pip's CUDA wheels keep here.
        nvidia = Path(torch.__file__).resolve().parent.parent / "nvidia"
        include_paths += [str(p) for p in sorted(nvidia.glob("cu*/include"))]
    return {
        "source_dir": str(src),
        "sources": [str(s) for s in sources],
        "cuda": cuda,
        "capability": cap,
        "cflags": cflags,
        "ldflags": ldflags,
        "cuda_flags": cuda_flags,
        "include_paths": include_paths,
        "arch": _cuda_arch_list() if cuda else "",
    }


def _build_key(settings: dict) -> str:
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


def _build_dir(settings: dict) -> Path:
    """A directory keyed by everything that changes the binary, so versions never overwrite each other."""
    if os.environ.get("PYGAN_BUILD_DIR"):
        return Path(os.environ["PYGAN_BUILD_DIR"]).expanduser()
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pygan" / "build"
    return root / _build_key(settings)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified_library(directory: Path, key: str) -> Path | None:
    """The library in `directory` if its manifest names `key` and its SHA-256 matches, else None.

    Reads only (no lock, no subprocess), so a read-only cache works; nothing here ever dlopens.
    """
    library, manifest = directory / f"{_EXT_NAME}.so", directory / _MANIFEST
    try:
        recorded = json.loads(manifest.read_text())
        if recorded.get("key") != key or library.stat().st_size != recorded.get("size"):
            return None
        return library if _sha256(library) == recorded.get("sha256") else None
    except (OSError, ValueError, AttributeError):
        return None


def _write_manifest(directory: Path, key: str, arch: str) -> None:
    """Record the library's key and hash (atomically: a reader sees the old manifest or the new one)."""
    library = directory / f"{_EXT_NAME}.so"
    data = {"key": key, "arch": arch, "size": library.stat().st_size, "sha256": _sha256(library)}
    tmp = directory / f".{_MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, directory / _MANIFEST)


def _import_library(library: Path):
    """Import the extension module from a verified library file (this is the dlopen)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(_EXT_NAME, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """An inter-process lock that the OS releases if its holder dies (unlike a bare lock file)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prebuilt_key() -> str:
    flavour = f"cu{torch.version.cuda}" if torch.version.cuda else "cpu"
    return f"torch {torch.__version__} {flavour} python {sys.version_info.major}.{sys.version_info.minor}"


def _prebuilt_dir() -> Path:
    return Path(__file__).resolve().parent / "_prebuilt"


def _prebuilt_library(capabilities: list[tuple[int, int]] | None = None) -> tuple[Path | None, str]:
    """The library compiled at install time (PYGAN_BUILD_EXT=1), if it is intact, was built for this
    torch and covers every visible GPU.

    Args:
        capabilities: the GPUs to cover (default: the visible ones).

    Returns:
        (the library or None, why not: "" when there is none at all).
    """
    prebuilt = _prebuilt_dir()
    if not (prebuilt / f"{_EXT_NAME}.so").is_file():
        return None, ""
    library = _verified_library(prebuilt, _prebuilt_key())
    if library is None:
        return None, "the prebuilt library is not for this torch/python, or its hash does not match"
    arch = json.loads((prebuilt / _MANIFEST).read_text()).get("arch", "")
    if arch:
        for cap in _visible_capabilities() if capabilities is None else capabilities:
            if not arch_covers(arch, cap):
                return None, (f"the prebuilt library was built for CUDA {arch}, which does not cover "
                              f"a visible GPU of compute capability {cap[0]}.{cap[1]}")
    return library, ""


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
        _fix_cuda_home()
        # torch reads the architectures from the environment; ours must win over a stale value.
        os.environ["TORCH_CUDA_ARCH_LIST"] = settings["arch"]
    key = _build_key(settings)
    build_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(build_dir.with_name(build_dir.name + ".lock")):
        # We hold the OS lock, so a lock file torch's FileBaton left behind is stale (its holder died):
        # without this a killed build would make every later import wait forever.
        with contextlib.suppress(FileNotFoundError):
            (build_dir / "lock").unlink()
        library = build_dir / f"{_EXT_NAME}.so"
        if library.exists() and _verified_library(build_dir, key) is None:
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
        if _verified_library(build_dir, key) is None:
            _write_manifest(build_dir, key, settings["arch"])
        return module


def _compile_and_load(result: BuildInfo):
    """Load the prebuilt library or JIT-compile one; fills `result` and returns the module."""
    result.compiler = os.environ.get("CXX", "c++")
    prebuilt, refused = _prebuilt_library()
    if prebuilt is not None:
        result.build_dir, result.library = str(prebuilt.parent), str(prebuilt)
        result.cpu_capability = "as built at install time"
        result.cuda_arch = json.loads((prebuilt.parent / _MANIFEST).read_text()).get("arch", "")
        result.verified = "prebuilt library, SHA-256 matches"
        module = _import_library(prebuilt)
        result.cuda_sources = torch._C._dispatch_has_kernel_for_dispatch_key("pygan::clip_", "CUDA")
        result.loaded = True
        return module
    if refused:
        print(f"pygan: not using the prebuilt library: {refused}; building one", file=sys.stderr, flush=True)
    settings = _build_settings()
    if settings["cuda"]:
        _check_arch_covers(settings["arch"])
    build_dir = _build_dir(settings)
    result.build_dir = str(build_dir)
    result.cuda_sources = settings["cuda"]
    result.cuda_arch = settings["arch"]
    result.cpu_capability = settings["capability"]
    result.sources = settings["sources"]
    library = _verified_library(build_dir, _build_key(settings))
    if library is not None:  # NOTE: [A verified cache]: no lock, no ninja, nothing written
        result.verified = "cached build, SHA-256 matches"
        module = _import_library(library)
    else:
        module = _compile(settings, build_dir, verbose=bool(_env_flag("PYGAN_VERBOSE_BUILD")))
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
    settings = _build_settings()
    library = Path(_compile(settings, _build_dir(settings), verbose=True).__file__)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(library, target / library.name)
    (target / "key.txt").write_text(_prebuilt_key() + "\n")  # for people; the manifest is what is checked
    _write_manifest(target, _prebuilt_key(), settings["arch"] if settings["cuda"] else "")
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
        if _env_flag("PYGAN_DISABLE_EXT"):
            result.error = "disabled by PYGAN_DISABLE_EXT=1"
        else:
            try:
                _module = _compile_and_load(result)
            except Exception as exc:  # any build/load failure means the fallback (or an error)
                result.error = f"{type(exc).__name__}: {exc}"
        if not result.loaded and _env_flag("PYGAN_REQUIRE_EXT"):
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
