"""pygan: fused PyTorch ops for GAN training and exact optimal transport.

Importing pygan is cheap: the C++/CUDA extension is compiled (once, cached) on the first op call.
See README.md and docs/ for usage.
"""

from pygan import ops, optim, ot, reference
from pygan._build import PyganExtensionWarning
from pygan.penalties import LazyRegularizer, dragan_penalty, fd_penalty, gradient_penalty, r1_penalty

__version__ = "0.1.0"

__all__ = [
    "ops", "optim", "ot", "reference", "PyganExtensionWarning", "__version__",
    "gradient_penalty", "r1_penalty", "dragan_penalty", "fd_penalty", "LazyRegularizer",
]
