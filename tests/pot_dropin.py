"""Run POT's own exact-OT tests with pygan.ot dropped in for POT's solvers.

Usage (offline; point it at a checkout of POT's test/ files, e.g. test_ot.py and test_1d_solver.py
with POT's conftest.py beside them)::

    python tests/pot_dropin.py /path/to/POT/test/test_ot.py /path/to/POT/test/test_1d_solver.py [-q ...]

``ot.emd``, ``ot.emd2``, ``ot.emd_1d``, ``ot.emd2_1d`` and ``ot.wasserstein_1d`` (and their
``ot.lp`` spellings) are replaced by pygan's for the whole run; the tests' bodies are not touched.
The documented deviations are listed in docs/ot.md ("Deviations from POT").
"""

from __future__ import annotations

import os
import sys

NAMES = ("emd", "emd2", "emd_1d", "emd2_1d", "wasserstein_1d")


class DropIn:
    """A pytest plugin that swaps POT's exact solvers for pygan's before any test is collected."""

    def pytest_configure(self, config):
        import ot
        import ot.lp

        import pygan.ot as pg

        for name in NAMES:
            for module in (ot, ot.lp):
                if hasattr(module, name):
                    setattr(module, name, getattr(pg, name))


def main(argv: list[str]) -> int:
    import pytest

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)  # this checkout's pygan
    os.environ.setdefault("PYGAN_REQUIRE_EXT", "1")
    return int(pytest.main(["-p", "no:cacheprovider", *argv], plugins=[DropIn()]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
