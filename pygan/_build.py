"""Build and load pygan's C++/CUDA extension: the one place that decides how.

The extension is compiled on first use with ``torch.utils.cpp_extension.load`` and ninja, into a
cache directory keyed by everything that changes the binary (torch version, CUDA or not, CPU vector
capability, compiler flags, source contents), so a rebuild happens only when one of those changes.

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
    TORCH_CUDA_ARCH_LIST    CUDA architectures; default: the visible GPU's, else 9.0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["PyganExtensionWarning", "BuildInfo", "load", "info", "module", "build_prebuilt"]

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


_lock = threading.Lock()
_info: BuildInfo | None = None
_module = None  # the compiled extension module (csrc/python.cpp) once loaded


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


def _cuda_arch_list() -> str:
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        archs = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{major}.{minor}" for major, minor in archs)
    return "9.0"


def _build_settings() -> dict:
    src = source_dir()
    cuda = want_cuda()
    # csrc/*.cpp (schemas, autograd kernels, the Python module) and csrc/cpu/*.cpp (CPU kernels).
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
        "sources": [str(s) for s in sources],
        "cuda": cuda,
        "capability": cap,
        "cflags": cflags,
        "ldflags": ldflags,
        "cuda_flags": cuda_flags,
        "include_paths": include_paths,
        "arch": _cuda_arch_list() if cuda else "",
    }


def _build_dir(settings: dict) -> Path:
    """A directory keyed by everything that changes the binary, so versions never overwrite each other."""
    if os.environ.get("PYGAN_BUILD_DIR"):
        return Path(os.environ["PYGAN_BUILD_DIR"]).expanduser()
    h = hashlib.sha256()
    for key in ("cflags", "ldflags", "cuda_flags", "arch", "include_paths"):
        h.update(repr(settings[key]).encode())
    for path in sorted(Path(settings["sources"][0]).parent.rglob("*")):
        if path.suffix in (".cpp", ".cu", ".h", ".cuh"):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    flavour = f"cu{torch.version.cuda.replace('.', '')}" if settings["cuda"] else "cpu"
    key = f"torch{torch.__version__.split('+')[0]}-{flavour}-{settings['capability']}-py{sys.version_info.major}{sys.version_info.minor}-{h.hexdigest()[:12]}"
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pygan" / "build"
    return root / key


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


def _prebuilt_library() -> Path | None:
    """The library compiled at install time (PYGAN_BUILD_EXT=1), if it was built for this torch."""
    prebuilt = Path(__file__).resolve().parent / "_prebuilt"
    library, key = prebuilt / f"{_EXT_NAME}.so", prebuilt / "key.txt"
    if library.is_file() and key.is_file() and key.read_text().strip() == _prebuilt_key():
        return library
    return None


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
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", settings["arch"])
    build_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(build_dir.with_name(build_dir.name + ".lock")):
        # We hold the OS lock, so a lock file torch's FileBaton left behind is stale (its holder died):
        # without this a killed build would make every later import wait forever.
        with contextlib.suppress(FileNotFoundError):
            (build_dir / "lock").unlink()
        if not (build_dir / f"{_EXT_NAME}.so").exists():
            print(f"pygan: compiling the C++{'/CUDA' if settings['cuda'] else ''} extension "
                  f"(first use only) in {build_dir} ...", file=sys.stderr, flush=True)
        # Builds only what changed, then imports the module, which registers the ops.
        return cpp_extension.load(
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


def _compile_and_load(result: BuildInfo):
    """Load the prebuilt library or JIT-compile one; fills `result` and returns the module."""
    result.compiler = os.environ.get("CXX", "c++")
    prebuilt = _prebuilt_library()
    if prebuilt is not None:
        import importlib.util

        result.build_dir, result.library = str(prebuilt.parent), str(prebuilt)
        result.cpu_capability = "as built at install time"
        spec = importlib.util.spec_from_file_location(_EXT_NAME, prebuilt)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result.cuda_sources = torch._C._dispatch_has_kernel_for_dispatch_key("pygan::clip_", "CUDA")
        result.loaded = True
        return module
    settings = _build_settings()
    build_dir = _build_dir(settings)
    result.build_dir = str(build_dir)
    result.cuda_sources = settings["cuda"]
    result.cpu_capability = settings["capability"]
    result.sources = settings["sources"]
    module = _compile(settings, build_dir, verbose=bool(_env_flag("PYGAN_VERBOSE_BUILD")))
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
    (target / "key.txt").write_text(_prebuilt_key() + "\n")
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
        if result.loaded:
            from pygan import ops

            ops._register_python_parts()
        else:
            warnings.warn(
                "pygan: the C++/CUDA extension is not available, so pygan runs its pure-PyTorch "
                f"reference implementation (correct but slower). Reason: {result.error}. "
                "Run `python -m pygan info` for details; set PYGAN_REQUIRE_EXT=1 to make this an error.",
                PyganExtensionWarning,
                stacklevel=3,
            )
        _info = result
        return result.loaded


def module():
    """The compiled extension module (fast eager entry points), or None on the fallback path."""
    return _module


def info() -> BuildInfo:
    """The loader's decisions and outcome (triggers the build on first call)."""
    load()
    assert _info is not None
    return _info
