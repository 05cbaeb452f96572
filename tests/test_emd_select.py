"""The greedy fill's order of the first arcs (csrc/emd/select.h).

tests/cpp/select_check.cpp sorts lists of keys with ``radix_sort_by_key``; the order must be exactly a
sort by (key, idx) (the fill's tie-break), over negative and positive keys, signed zeros (equal, so
the idx decides), infinities, subnormals, values across many orders of magnitude and many ties. It
also runs the greedy fill through ``visit_in_key_order`` (a sorted prefix, then only the arcs that
can still carry mass): the plan's arcs must be exactly those of the fill over the fully sorted list.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testing import compile_driver

DRIVER = Path(__file__).resolve().parent / "cpp" / "select_check.cpp"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return compile_driver(tmp_path_factory, "select_check", DRIVER)


def radix_order(driver, lists):
    text = "".join(f"S {len(keys)}\n" + " ".join(float(k).hex() for k in keys) + "\n" for keys in lists)
    out = subprocess.run([str(driver)], input=text, capture_output=True, text=True, check=True)
    rows = out.stdout.splitlines()
    assert len(rows) == len(lists)
    return [[int(x) for x in row.split()] for row in rows]


def expected_order(keys):
    return sorted(range(len(keys)), key=lambda t: (keys[t], t))  # -0.0 == 0.0: idx decides


KEYS = st.one_of(
    st.floats(allow_nan=False),  # every magnitude, subnormals, infinities, both zeros
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 1e-300, -1e300]),  # ties
    st.floats(min_value=0.0, max_value=8.0),  # the fill's usual range: reduced costs >= 0
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(KEYS, max_size=300), min_size=1, max_size=5))
def test_order_is_sort_by_key_then_index(driver, lists):
    assert radix_order(driver, lists) == [expected_order(keys) for keys in lists]


def test_larger_lists_and_shared_bytes(driver):
    import numpy as np

    rng = np.random.default_rng(0)
    lists = [
        rng.uniform(0, 1, 5000).tolist(),  # every byte varies
        np.round(rng.uniform(0, 4, 5000), 1).tolist(),  # few distinct keys: long ties
        [3.0] * 1000,  # one key: every pass skipped, the input order kept
        (rng.standard_normal(5000) * 10.0 ** rng.integers(-200, 200, 5000)).tolist(),
        [],
        [-0.0, 0.0, -0.0],
    ]
    assert radix_order(driver, lists) == [expected_order(keys) for keys in lists]


def greedy_basis(driver, problems):
    """The driver's greedy fills: [(supply, demand, arcs [(key, row, col)], prefix)] -> [[idx]]."""
    text = ""
    for a, b, arcs, prefix in problems:
        text += f"G {len(a)} {len(b)} {len(arcs)} {prefix}\n" + " ".join(float(x).hex() for x in [*a, *b]) + "\n"
        text += "".join(f"{float(k).hex()} {r} {c}\n" for k, r, c in arcs)
    out = subprocess.run([str(driver)], input=text, capture_output=True, text=True, check=True)
    rows = out.stdout.splitlines()
    assert len(rows) == len(problems)
    return [[int(x) for x in row.split()] for row in rows]


def expected_greedy(a, b, arcs):
    """The fill over every arc in (key, idx) order: the arcs that carry more than a crumb."""
    left_a, left_b, basis = list(a), list(b), []
    crumb = 1e-12 * sum(a)
    for t in sorted(range(len(arcs)), key=lambda t: (arcs[t][0], t)):
        _, r, c = arcs[t]
        f = min(left_a[r], left_b[c])
        if f > crumb:
            basis.append(t)
        left_a[r] -= f
        left_b[c] -= f
    return basis


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 25), st.integers(1, 25), st.integers(0, 2**32 - 1), st.sampled_from(["uniform", "random"]),
       st.sampled_from([0.0, 0.3, 0.7, 1.0]), st.sampled_from([1, 3, 10, 10**6]))
def test_greedy_prefix_gives_the_full_orders_plan(driver, n, m, seed, masses, density, prefix):
    import numpy as np

    rng = np.random.default_rng(seed)
    if masses == "uniform":  # equal masses: steps that empty a row and a column at once
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a, b = rng.uniform(0.05, 1, n), rng.uniform(0.05, 1, m)
        a, b = a / a.sum(), b / b.sum()
    pairs = [(r, c) for r in range(n) for c in range(m) if rng.random() < density or c == r % m]
    keys = np.round(rng.uniform(0, 3, len(pairs)), 1)  # many ties: the idx decides
    arcs = [(float(k), r, c) for k, (r, c) in zip(keys, pairs)]
    assert greedy_basis(driver, [(a, b, arcs, prefix)]) == [expected_greedy(a, b, arcs)]
