"""Image data sets that need no download: procedurally drawn shapes, and scikit-learn's digits.

* :func:`shapes`: n images of one shape each -- a disc, a square or an equilateral triangle -- of
  random size, position, rotation and brightness (grey) or colour (RGB), on a black background,
  anti-aliased over about one pixel. Generated from a seed with vectorised torch code (CPU, so the same
  seed gives the same images on every machine), with the shape class as the label.
* :func:`digits`: the 1797 8x8 handwritten digits bundled with scikit-learn (no download either;
  scikit-learn is an optional dependency), upsampled bilinearly to 32x32 or 64x64, labels 0-9.

Both return ``(images, labels)``: float32 images [N, C, side, side] with values in [-1, 1] (the
range of a tanh generator) and int64 labels [N] (for conditional models).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pygan import _validate as _v

__all__ = ["IMAGE_DATASETS", "SHAPE_CLASSES", "shapes", "digits", "image_dataset"]

IMAGE_DATASETS = ("shapes", "digits")
SHAPE_CLASSES = ("disc", "square", "triangle")
_SIDES = (32, 64)
_CHUNK = 1024  # images rendered at once: bounds the temporary [chunk, side, side] tensors

# Half-side of the square and inradius of the triangle for a disc of radius r with the same area
# (pi r^2 = 4 a^2 = 3 sqrt(3) rho^2), so the classes differ by shape, not by how much of the image they fill.
_SQUARE_HALF = math.sqrt(math.pi) / 2
_TRIANGLE_INRADIUS = math.sqrt(math.pi / (3 * math.sqrt(3)))
_MAX_EXTENT = 2 * _TRIANGLE_INRADIUS  # the largest circumradius of the three (the triangle's), in units of r


def _check_geometry(side, channels) -> None:
    if isinstance(side, bool) or side not in _SIDES:
        raise ValueError(f"side: expected one of {', '.join(map(str, _SIDES))}, got {side!r}")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels: expected 1 or 3, got {channels!r}")


def _signed_distance(k: int, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Signed distance (px, negative inside) of pixel offsets (dx, dy) from shape class k of disc radius r."""
    if k == 0:
        return torch.sqrt(dx * dx + dy * dy) - r
    cos, sin = torch.cos(angle), torch.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # coordinates in the shape's rotated frame
    if k == 1:
        return torch.maximum(u.abs(), v.abs()) - _SQUARE_HALF * r
    # The triangle: the intersection of three half-planes with outward normals 120 degrees apart.
    normals = [(math.cos(2 * math.pi * j / 3), math.sin(2 * math.pi * j / 3)) for j in range(3)]
    return torch.stack([cu * u + su * v for cu, su in normals]).amax(0) - _TRIANGLE_INRADIUS * r


def shapes(n: int, side: int = 32, channels: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n images of random discs, squares and triangles.

    Each image: a class uniformly from :data:`SHAPE_CLASSES`; a disc-equivalent radius r uniform in
    [0.12, 0.22]·side (squares and triangles have the disc's area); a centre uniform where the whole
    shape fits; a rotation uniform in [0, 2π); a brightness uniform in [0.5, 1] (grey) or a colour
    uniform in [0.2, 1]³ (RGB). Pixel value = -1 + 2·colour·coverage, where coverage is the shape's
    signed distance (in pixels, at the pixel centre) mapped linearly from 1 (0.5 px inside) to 0
    (0.5 px outside).

    Args:
        n: the number of images (>= 0).
        side: 32 or 64.
        channels: 1 (grey) or 3 (colour).
        seed: the seed of the CPU torch.Generator everything is drawn from.

    Returns:
        (images [n, channels, side, side] float32 in [-1, 1], labels [n] int64 indexing SHAPE_CLASSES).
    """
    n = _v.integer(n, "n", "shapes", low=0)
    _check_geometry(side, channels)
    seed = _v.integer(seed, "seed", "shapes")
    g = torch.Generator().manual_seed(int(seed))
    # All random numbers are drawn first, in a fixed order, so the images do not depend on _CHUNK.
    labels = torch.randint(len(SHAPE_CLASSES), (n,), generator=g)
    radius = (0.12 + 0.10 * torch.rand(n, generator=g, dtype=torch.float64)) * side
    # + 2 px: the polygon distances below are exact on the edges but half the true distance beyond
    # a triangle's vertex, so the anti-aliased rim reaches up to 1 px past the vertices.
    margin = _MAX_EXTENT * radius + 2.0
    centre = margin[:, None] + torch.rand(n, 2, generator=g, dtype=torch.float64) * (side - 2 * margin[:, None])
    angle = torch.rand(n, generator=g, dtype=torch.float64) * (2 * math.pi)
    if channels == 1:
        colour = 0.5 + 0.5 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    else:
        colour = 0.2 + 0.8 * torch.rand(n, 3, generator=g, dtype=torch.float64)

    # Rendering in float32 (positions are at most 64 px: errors ~1e-5 px), one class at a time so
    # each pixel evaluates only its image's own signed distance.
    coords = torch.arange(side, dtype=torch.float32) + 0.5  # pixel centres
    py, px = torch.meshgrid(coords, coords, indexing="ij")  # [side, side]
    params = torch.cat([centre, radius[:, None], angle[:, None], colour], dim=1).to(torch.float32)
    out = torch.empty(n, channels, side, side, dtype=torch.float32)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        for k in range(len(SHAPE_CLASSES)):
            idx = lo + torch.nonzero(labels[lo:hi] == k).flatten()
            if idx.numel() == 0:
                continue
            p = params[idx]
            dx = px - p[:, 0, None, None]  # [b, side, side]
            dy = py - p[:, 1, None, None]
            r = p[:, 2, None, None]
            out[idx] = -1.0 + 2.0 * p[:, 4:, None, None] * (0.5 - _signed_distance(k, dx, dy, r, p[:, 3, None, None])
                                                            ).clamp(0.0, 1.0)[:, None]
    return out, labels


def digits(side: int = 32, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 handwritten 8x8 digits, upsampled to side x side.

    Pixel values 0..16 are mapped to [-1, 1] by v / 8 - 1, then upsampled bilinearly
    (``align_corners=False``; a convex combination, so the range stays [-1, 1]). With channels=3 the
    grey image is repeated in every channel.

    Args:
        side: 32 or 64.
        channels: 1 or 3.

    Returns:
        (images [1797, channels, side, side] float32 in [-1, 1], labels [1797] int64 in 0..9).

    Raises:
        ImportError: scikit-learn is not installed (``pip install scikit-learn``).
    """
    _check_geometry(side, channels)
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("digits: the digits data set needs scikit-learn, an optional dependency; "
                          "install it with `pip install scikit-learn`") from exc
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # [N, 1, 8, 8]
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp_(-1.0, 1.0)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    return x.contiguous(), torch.as_tensor(bunch.target, dtype=torch.int64)


def image_dataset(name: str, *, side: int = 32, channels: int = 1, n: int = 10000,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One of :data:`IMAGE_DATASETS` by name.

    Args:
        name: "shapes" or "digits".
        side, channels: as in :func:`shapes` / :func:`digits`.
        n, seed: the size and seed of "shapes" (ignored by "digits", which has its fixed 1797 images).

    Returns:
        (images, labels) as :func:`shapes` / :func:`digits` return them.
    """
    if name == "shapes":
        return shapes(n, side=side, channels=channels, seed=seed)
    if name == "digits":
        return digits(side=side, channels=channels)
    _v.choice(name, "name", IMAGE_DATASETS, "image_dataset")
    raise AssertionError(name)  # unreachable: choice() refused every other name
