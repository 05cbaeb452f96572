"""The grids every test parametrizes over (dtypes, devices, shapes) and small shared helpers."""

import torch

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Shapes with vector tails, sizes 0 and 1, and one larger than a parallel grain (32768 elements).
SHAPES = [(), (0,), (1,), (7,), (3, 5), (64, 33), (2, 3, 4, 5), (40000,)]


def layouts(t: torch.Tensor):
    """The same values in memory layouts a kernel must handle: contiguous, transposed (dense but not
    contiguous), a strided slice (not dense) and, for 4-D, channels_last."""
    yield "contiguous", t.clone()
    if t.dim() >= 2:
        yield "transposed", t.clone().transpose(0, 1).contiguous().transpose(0, 1)
        big = torch.zeros(t.shape[0], t.shape[1] * 2, *t.shape[2:], dtype=t.dtype, device=t.device)
        view = big[:, ::2]
        view.copy_(t)
        yield "strided", view
    if t.dim() == 4:
        yield "channels_last", t.clone().contiguous(memory_format=torch.channels_last)


def special_values(dtype, device="cpu"):
    """NaN, +-inf, signed zeros, huge and tiny values."""
    big = torch.finfo(dtype).max
    return torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, big, -big, 1e-30, 0.5],
                        dtype=dtype, device=device)


def compile_driver(tmp_path_factory, name: str, driver, *sources, defines=()):
    """Compiles a test's C++ driver (with the extension's csrc/ on the include path, and any of its
    ``sources`` given relative to csrc/) into a temporary folder and returns the executable's path;
    skips the test where no C++ compiler is installed.

    Args:
        tmp_path_factory: pytest's fixture (the executable lives in a fresh folder of it).
        name: the executable's name.
        driver: the driver's path (tests/cpp/...).
        sources: more translation units, relative to csrc/ (for example ``"emd/network_simplex.cpp"``).
        defines: preprocessor macros, without ``-D``.

    Returns:
        The executable's Path.
    """
    import shutil
    import subprocess

    import pytest

    from pygan._build_flags import source_dir

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = source_dir()
    exe = tmp_path_factory.mktemp(name) / name
    subprocess.run([cxx, "-O1", "-std=c++17", *(f"-D{d}" for d in defines), f"-I{src}", str(driver),
                    *(str(src / s) for s in sources), "-o", str(exe)], check=True)
    return exe
