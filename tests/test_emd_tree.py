"""The network simplex's spanning-tree code, checked after every pivot.

tests/cpp/emd_tree_check.cpp drives ``TransportSimplex`` (csrc/emd/network_simplex.cpp, torch-free)
compiled with ``-DPYGAN_EMD_CHECK_TREE``: after each pivot the tree's parent/pred/thread/subtree-size
/last-successor arrays are rebuilt from scratch and compared, and a broken invariant aborts the
driver (a non-zero exit here). Each problem's optimal cost is compared with an independent LP solve
(scipy's HiGHS), from both starts (big-M tree and greedy forest) and with arcs arriving in two
batches (the resume path of the pricing rounds), and with every arc in one block priced by the
complete problem's row-wise search.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testing import compile_driver

DRIVER = Path(__file__).resolve().parent / "cpp" / "emd_tree_check.cpp"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return compile_driver(tmp_path_factory, "emd_tree_check", DRIVER, "emd/network_simplex.cpp",
                          defines=["PYGAN_EMD_CHECK_TREE"])


def solve(driver, problems):
    """Runs the driver on [(a, b, M, start, split)]; returns [(status, cost, pivots)]."""
    lines = []
    for a, b, M, start, split in problems:
        lines.append(f"{len(a)} {len(b)} {int(start)} {int(split)}")
        lines += [" ".join(repr(float(x)) for x in v) for v in (a, b, M.ravel())]
    out = subprocess.run([str(driver)], input="\n".join(lines) + "\n", capture_output=True, text=True)
    assert out.returncode == 0, f"tree invariant broken (exit {out.returncode}): {out.stderr[-500:]}"
    rows = [line.split() for line in out.stdout.splitlines()]
    assert len(rows) == len(problems)
    return [(int(s), float(c), int(p)) for s, c, p in rows]


def lp_cost(a, b, M):
    linprog = pytest.importorskip("scipy.optimize").linprog
    n, m = M.shape
    A = np.zeros((n + m, n * m))
    for i in range(n):
        A[i, i * m:(i + 1) * m] = 1.0
    for j in range(m):
        A[n + j, j::m] = 1.0
    res = linprog(M.ravel(), A_eq=A, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    assert res.status == 0
    return res.fun


@st.composite
def problems(draw):
    n = draw(st.integers(1, 14))
    m = draw(st.integers(1, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "random", "integer"]))
    if kind == "uniform":  # equal masses: the most degenerate pivots
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a, b = rng.uniform(0.05, 1.0, n), rng.uniform(0.05, 1.0, m)
        a, b = a / a.sum(), b / b.sum()
    costs = draw(st.sampled_from(["float", "ties", "equal", "wide"]))
    if costs == "float":
        M = rng.uniform(0, 1, (n, m))
    elif costs == "ties":
        M = rng.integers(0, 3, (n, m)).astype(float)
    elif costs == "equal":
        M = np.ones((n, m))
    else:  # across many orders of magnitude
        M = 10.0 ** rng.uniform(-6, 6, (n, m))
    return a, b, M


@settings(max_examples=60, deadline=None)
@given(problems())
def test_tree_invariants_and_cost_against_linprog(driver, problem):
    a, b, M = problem
    want = lp_cost(a, b, M)
    results = solve(driver, [(a, b, M, start, split) for start in (0, 1) for split in (0, 1, 2)])
    for status, cost, _ in results:
        assert status == 1  # optimal
        assert cost == pytest.approx(want, rel=1e-9, abs=1e-12 * float(np.abs(M).max()))


def test_tree_on_larger_problems(driver):
    # Larger problems reach deep trees, long stems and subtrees of more than half the nodes (the
    # potentials then shift on the other side of the cut).
    rng = np.random.default_rng(7)
    probs = []
    for n, m in [(60, 45), (80, 80), (1, 70), (70, 1)]:
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + 2.0
        M = np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))
        a, b = rng.uniform(0.1, 1, n), rng.uniform(0.1, 1, m)
        probs.append((a / a.sum(), b / b.sum(), M))
    got = solve(driver, [(a, b, M, start, split) for a, b, M in probs for start in (0, 1) for split in (0, 1, 2)])
    for t, (a, b, M) in enumerate(probs):
        want = lp_cost(a, b, M)
        for status, cost, pivots in got[6 * t:6 * t + 6]:
            assert status == 1
            assert cost == pytest.approx(want, rel=1e-9)
            assert pivots > 0 or min(M.shape) == 1
