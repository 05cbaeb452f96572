"""The first arc set's column selection (``select_columns``, NOTE: [Column selection] in
csrc/emd/column_select.cpp): each active column's k best active rows by ``C_ij - u_i``.

tests/cpp/column_select_check.cpp runs it on problems written to its stdin; for every column the
k rows it returns must be distinct active rows whose keys are exactly the k smallest of that
column's keys (any k of equal keys will do), computed here with NumPy. Covered: cost matrices and
points (the costs computed on the fly), every row and column active or a subset, ties (integer and
all-equal costs, which leave fewer than k keys below the sampled threshold and take the fallback),
values across many orders of magnitude, k from 1 to every row, column blocks split across pieces.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testing import compile_driver

DRIVER = Path(__file__).resolve().parent / "cpp" / "column_select_check.cpp"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return compile_driver(tmp_path_factory, "column_select_check", DRIVER, "emd/column_select.cpp")


def _fmt(values) -> str:
    return " ".join(float(v).hex() for v in np.asarray(values, dtype=np.float64).ravel())


def select(driver, problems):
    """Runs the driver; returns, per problem, an [ma, k] array of chosen active rows."""
    parts = []
    for p in problems:
        n, m = p["n"], p["m"]
        d = 0 if p.get("M") is not None else p["x"].shape[1]
        parts.append(f"{n} {m} {d} {p['k']} {p['grain']}")
        parts.append(_fmt(p["M"]) if d == 0 else _fmt(p["x"]) + "\n" + _fmt(p["y"]))
        parts.append(f"{len(p['rows'])} " + " ".join(map(str, p["rows"])))
        parts.append(f"{len(p['cols'])} " + " ".join(map(str, p["cols"])))
        parts.append(_fmt(p["u"]))
        parts.append(" ".join(map(str, p["order"])))
    # The driver reads hexadecimal floats with scanf("%lf"), so the values arrive bit for bit.
    out = subprocess.run([str(driver)], input="\n".join(parts) + "\n", capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    result, at = [], 0
    for p in problems:
        ma = len(p["cols"])
        result.append(np.array([list(map(int, line.split())) for line in lines[at:at + ma]]).reshape(ma, p["k"]))
        at += ma
    assert at == len(lines)
    return result


def costs_of(p) -> np.ndarray:
    if p.get("M") is not None:
        return p["M"]
    return np.sqrt(((p["x"][:, None, :] - p["y"][None, :, :]) ** 2).sum(-1))


def check(p, chosen, exact=True):
    C = costs_of(p)[np.ix_(p["rows"], p["cols"])]
    keys = C - np.asarray(p["u"])[:, None]
    k = p["k"]
    for l in range(len(p["cols"])):
        pick = chosen[l]
        assert len(set(pick.tolist())) == k, f"column {l}: repeated rows {pick}"
        assert pick.min() >= 0 and pick.max() < len(p["rows"])
        got, want = np.sort(keys[pick, l]), np.sort(keys[:, l])[:k]
        if exact:
            np.testing.assert_array_equal(got, want, err_msg=f"column {l}")
        else:  # points: the driver's distances may differ from NumPy's in the last bit
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=f"column {l}")


@st.composite
def problems(draw):
    n = draw(st.integers(1, 120))
    m = draw(st.integers(1, 70))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = np.arange(n) if draw(st.booleans()) else np.sort(rng.choice(n, draw(st.integers(1, n)), replace=False))
    cols = np.arange(m) if draw(st.booleans()) else np.sort(rng.choice(m, draw(st.integers(1, m)), replace=False))
    k = draw(st.integers(1, len(rows)))
    kind = draw(st.sampled_from(["float", "ties", "equal", "wide", "points"]))
    p = {"n": n, "m": m, "k": k, "rows": rows, "cols": cols, "grain": draw(st.integers(1, 3)), "M": None}
    if kind == "points":
        dim = draw(st.integers(1, 3))
        p["x"], p["y"] = rng.normal(size=(n, dim)), rng.normal(size=(m, dim)) + 1.0
    elif kind == "float":
        p["M"] = rng.uniform(0, 1, (n, m))
    elif kind == "ties":
        p["M"] = rng.integers(0, 3, (n, m)).astype(float)
    elif kind == "equal":
        p["M"] = np.ones((n, m))
    else:
        p["M"] = 10.0 ** rng.uniform(-6, 6, (n, m))
    duals = draw(st.sampled_from(["zero", "random"]))
    p["u"] = np.zeros(len(rows)) if duals == "zero" else rng.uniform(-1, 1, len(rows))
    p["order"] = rng.permutation(len(rows))
    return p


@settings(max_examples=150, deadline=None)
@given(problems())
def test_each_column_gets_its_k_smallest_keys(driver, p):
    [chosen] = select(driver, [p])
    check(p, chosen, exact=p["M"] is not None)


@pytest.mark.parametrize("kind", ["matrix", "points"])
def test_sizes_of_the_solver(driver, kind):
    # The sizes where the solver selects (k = 32 and the cone case's 128, n > 2k): the sampled
    # threshold decides which keys are kept, over several column blocks and pieces.
    rng = np.random.default_rng(3)
    problems = []
    for n, m, k in [(300, 200, 32), (600, 90, 128), (257, 33, 128)]:
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + (2.0, 1.0)
        p = {"n": n, "m": m, "k": k, "rows": np.arange(n), "cols": np.arange(m), "grain": 2,
             "u": rng.uniform(-0.5, 0.5, n), "order": rng.permutation(n), "M": None}
        if kind == "matrix":
            p["M"] = np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))
        else:
            p["x"], p["y"] = x, y
        problems.append(p)
    for p, chosen in zip(problems, select(driver, problems)):
        check(p, chosen, exact=kind == "matrix")
