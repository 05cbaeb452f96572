"""pygan's installer.

    pip install .                 the package; the C++/CUDA extension is compiled on first use (ninja)
    pip install -e ".[test]"      an editable install with the test extras
    PYGAN_BUILD_EXT=1 pip install --no-build-isolation .
                                  also compile the extension now, into the installed package, with the
                                  torch already installed in this environment (the build must see the
                                  same torch the package will run with, hence --no-build-isolation)

The C++/CUDA sources (csrc/) and the benchmarks (bench/) are installed inside the package as
pygan/csrc and pygan/bench, so the JIT build and `python -m pygan bench` work from any install.
"""

import os
import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "pygan" / "__init__.py").read_text()).group(1)


class BuildPyWithExtension(build_py):
    """build_py, plus (with PYGAN_BUILD_EXT=1) the extension compiled into pygan/_prebuilt."""

    def run(self):
        super().run()
        if os.environ.get("PYGAN_BUILD_EXT", "0") not in ("", "0"):
            import sys

            sys.path.insert(0, str(ROOT))
            from pygan import _build

            target = Path(self.build_lib) / "pygan" / "_prebuilt"
            _build.build_prebuilt(target)


setup(
    name="pygan-torch",  # "pygan" on the public index is an unrelated project; the import name stays pygan
    version=VERSION,
    description="Fused PyTorch C++/CUDA ops for GAN training (WGAN clipping, clipped RMSprop) and exact optimal transport",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=["pygan", "pygan.ot", "pygan.nn", "pygan.train", "pygan.experiments", "pygan.bench", "pygan.csrc", "pygan.csrc.cpu", "pygan.csrc.cuda", "pygan.csrc.emd"],
    package_dir={"pygan.bench": "bench", "pygan.csrc": "csrc", "pygan.csrc.cpu": "csrc/cpu",
                 "pygan.csrc.cuda": "csrc/cuda", "pygan.csrc.emd": "csrc/emd"},
    package_data={"pygan.csrc": ["*.cpp", "*.h"], "pygan.csrc.cpu": ["*.cpp", "*.h"],
                  "pygan.csrc.cuda": ["*.cu", "*.cuh", "*.h"], "pygan.csrc.emd": ["*.cpp", "*.h"]},
    install_requires=["torch>=2.4", "numpy", "ninja"],
    extras_require={
        "test": ["pytest", "hypothesis", "POT", "scipy", "matplotlib"],  # POT/scipy: EMD cross-checks; matplotlib: the trainer pictures
        "bench": ["POT", "scipy"],
        "plot": ["matplotlib"],
        "progress": ["tqdm"],
    },
    cmdclass={"build_py": BuildPyWithExtension},
    entry_points={"console_scripts": ["pygan=pygan.__main__:main"]},
)
