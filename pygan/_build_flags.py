"""What the loader compiles, and how: the sources, the compiler flags, the CPU vector capability and
the CUDA architectures (a part of :mod:`pygan._build`, which documents the environment variables).

Internal API of the loader (used by ``pygan._build`` and ``pygan._build_cache`` only). Imports nothing
of pygan: the loader knows nothing about the ops.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

__all__ = ["env_flag", "source_dir", "want_cuda", "cpu_capability", "fix_cuda_home", "visible_capabilities",
           "cuda_arch_list", "arch_covers", "check_arch_covers", "build_settings"]


def env_flag(name: str) -> bool | None:
    """An on/off environment variable: None when unset or empty, False for 0/false/no/off, else True."""
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
    forced = env_flag("PYGAN_BUILD_CUDA")
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


def fix_cuda_home() -> None:
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


def visible_capabilities() -> list[tuple[int, int]]:
    """The compute capabilities of the visible GPUs, sorted and without repeats ([] without CUDA)."""
    if not torch.cuda.is_available():
        return []
    return sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})


def cuda_arch_list() -> str:
    """The CUDA architectures to build for: TORCH_CUDA_ARCH_LIST, else the visible GPUs', else the default."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    archs = visible_capabilities()
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


def check_arch_covers(arch_list: str) -> None:
    """Refuse an architecture list that leaves out a visible GPU (every launch would fail there)."""
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        cap = torch.cuda.get_device_capability(i)
        if not arch_covers(arch_list, cap):
            raise RuntimeError(
                f"TORCH_CUDA_ARCH_LIST={arch_list!r} does not cover cuda:{i} "
                f"({torch.cuda.get_device_name(i)}, compute capability {cap[0]}.{cap[1]}); add "
                f"{cap[0]}.{cap[1]} or unset it to build for the visible GPUs")


def build_settings() -> dict:
    """Everything the build needs: sources, flags, include paths, CUDA or not and its architectures."""
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
        "arch": cuda_arch_list() if cuda else "",
    }
