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
