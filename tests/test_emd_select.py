"""The greedy fill's sort of the first arcs (``radix_sort_by_key`` in csrc/emd/select.h).

tests/cpp/select_check.cpp sorts lists of keys with it; the order must be exactly a sort by
(key, idx) (the fill's tie-break), over negative and positive keys, signed zeros (equal, so the idx
decides), infinities, subnormals, values across many orders of magnitude and many ties.
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
    text = "".join(f"{len(keys)}\n" + " ".join(float(k).hex() for k in keys) + "\n" for keys in lists)
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
