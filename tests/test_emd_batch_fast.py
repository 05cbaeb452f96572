"""The batched and single small uniform square path (csrc/emd/assignment.cpp's vectorised scans and
the batch driver in csrc/emd_binding.cpp that hands the problems out through a shared counter),
each problem against an independent oracle: a loop over POT's ot.emd2 (and scipy's
linear_sum_assignment where POT is absent), over sizes around the vector widths (1 ... 17, 31, 64,
67, 130, 256), tied costs (integer costs, repeated rows and points), negative, tiny and huge costs,
B = 1, non-contiguous and float32 inputs, batches mixing uniform and non-uniform weights; and bad
input on the batch path, which must raise the same errors, naming the argument, as a single call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ot_fixtures import F64, assert_optimal, cdist
from pygan import ot

SIZES = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 64, 67, 130, 256]
KINDS = ["points", "integer", "repeated rows", "repeated points", "negative"]


def costs(B: int, n: int, kind: str, seed: int) -> torch.Tensor:
    """[B, n, n] float64 costs of one kind."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "points":
        return torch.stack([cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(n, 2, dtype=F64, generator=gen))
                            for _ in range(B)])
    if kind == "integer":  # many equal reduced costs in every scan
        return (torch.rand(B, n, n, dtype=F64, generator=gen) * 3).floor()
    if kind == "repeated rows":  # whole rows equal: every assignment of them ties
        k = max(1, n // 3)
        base = (torch.rand(B, k, n, dtype=F64, generator=gen) * 4).floor()
        return base[:, torch.arange(n) % k]
    if kind == "repeated points":  # each point three times on each side: zero-cost ties
        k = (n + 2) // 3
        out = []
        for _ in range(B):
            x = torch.rand(k, 2, dtype=F64, generator=gen).repeat(3, 1)[:n]
            out.append(cdist(x, torch.rand(k, 2, dtype=F64, generator=gen).repeat(3, 1)[:n]))
        return torch.stack(out)
    if kind == "negative":
        return torch.randn(B, n, n, dtype=F64, generator=gen) * 1e3
    raise ValueError(kind)


def oracle(M: torch.Tensor) -> list[float]:
    """Each problem's optimal cost with uniform weights: POT's ot.emd2 in a loop, or scipy's
    linear_sum_assignment (the mean cost of an optimal assignment) where POT is missing. n = 1 has
    one plan, whose cost is M's one entry (POT 0.9 calls a 1 x 1 problem with a negative cost
    infeasible)."""
    try:
        import ot as pot
    except ImportError:
        pot = None
    out = []
    for Mi in M.numpy():
        n = Mi.shape[0]
        if n == 1:
            out.append(float(Mi[0, 0]))
        elif pot is not None:
            w = np.full(n, 1.0 / n)
            out.append(float(pot.emd2(w, w, Mi, numItermax=10**9)))
        else:
            optimize = pytest.importorskip("scipy.optimize")
            r, c = optimize.linear_sum_assignment(Mi)
            out.append(float(Mi[r, c].sum() / n))
    return out


def check_batch(M: torch.Tensor, threads=2, rtol=1e-9):
    """pygan's batched answer for M [B, n, n] with uniform weights: each cost against the oracle,
    each problem optimal and certified, its plan an assignment (the assignment solver answered:
    iterations count its augmenting paths, at most n)."""
    B, n, _ = M.shape
    cost, log = ot.emd2(None, None, M, log=True, return_matrix=True, numThreads=threads)
    assert cost.shape == (B,) and cost.dtype == F64
    assert log["status"] == ["optimal"] * B
    expected = oracle(M)
    scale = float(M.abs().max()) or 1.0
    for p in range(B):
        assert float(cost[p]) == pytest.approx(expected[p], rel=rtol, abs=1e-12 * scale), p
        G = log["G"][p]
        assert_optimal(None, None, M[p], G, log["u"][p], log["v"][p])
        assert int((G != 0).sum()) == n and torch.allclose(G.sum(1), torch.full((n,), 1.0 / n, dtype=F64))
        assert log["iterations"][p] <= n
    return cost, log


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_batch_against_a_loop_over_pot(n, kind):
    B = 6 if n <= 130 else 3
    check_batch(costs(B, n, kind, seed=17 * n + len(kind)))


@pytest.mark.parametrize("n", [1, 8, 64, 128, 256])
@pytest.mark.parametrize("kind", ["points", "integer"])
def test_single_call_against_pot(n, kind):
    M = costs(1, n, kind, seed=n)[0]
    cost, log = ot.emd2(None, None, M, log=True, return_matrix=True)
    assert cost.shape == () and log["status"] == "optimal" and log["iterations"] <= n
    assert float(cost) == pytest.approx(oracle(M[None])[0], rel=1e-9, abs=1e-15)
    assert_optimal(None, None, M, log["G"], log["u"], log["v"])


def test_many_small_problems_more_than_the_threads():
    """256 problems of 64 x 64 (the benchmark's shape): every one optimal, none skipped or solved
    twice by the shared counter (each cost equals its own single call)."""
    M = costs(256, 64, "points", seed=5)
    cost, log = check_batch(M)
    singles = torch.stack([ot.emd2(None, None, M[p]) for p in range(0, 256, 17)])
    assert torch.equal(cost[::17], singles)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_same_plans_for_any_thread_count(threads):
    """Each problem is solved whole by one thread with its workspace reset: the same plan and duals
    (bit for bit) whichever thread takes it and however many there are, ties included."""
    M = torch.cat([costs(20, 33, "integer", seed=1), costs(20, 33, "points", seed=2)])
    ref_cost, ref = ot.emd2(None, None, M, log=True, return_matrix=True, numThreads=1)
    cost, log = ot.emd2(None, None, M, log=True, return_matrix=True, numThreads=threads)
    assert torch.equal(cost, ref_cost)
    assert torch.equal(log["G"], ref["G"]) and torch.equal(log["u"], ref["u"]) and torch.equal(log["v"], ref["v"])


def test_batch_of_one_and_problems_of_one():
    M = costs(1, 40, "points", seed=3)
    cost = ot.emd2(None, None, M)
    assert cost.shape == (1,) and float(cost[0]) == pytest.approx(oracle(M)[0], rel=1e-12)
    M1 = torch.randn(5, 1, 1, dtype=F64)
    cost1, log1 = ot.emd2(None, None, M1, log=True)
    assert torch.equal(cost1, M1.reshape(5)) and log1["status"] == ["optimal"] * 5
    assert torch.equal(log1["u"] + log1["v"], M1.reshape(5, 1))


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match="^M: empty cost matrix"):
        ot.emd2(None, None, torch.zeros(0, 4, 4, dtype=F64))


def test_non_contiguous_inputs():
    """Transposed and strided views of M and of batched weights give the answers of their
    contiguous copies."""
    big = costs(8, 64, "points", seed=4)
    M = big.transpose(1, 2)[::2]  # [4, 64, 64], neither contiguous nor unit-stride in batch
    assert not M.is_contiguous()
    a = torch.full((4, 128), 1.0 / 64, dtype=F64)[:, ::2]
    assert not a.is_contiguous()
    cost = ot.emd2(a, a, M)
    assert torch.equal(cost, ot.emd2(None, None, M.contiguous()))
    assert cost.tolist() == pytest.approx(oracle(M.contiguous()), rel=1e-9)


def test_float32_inputs():
    M = costs(5, 48, "points", seed=6).float()
    a = torch.full((48,), 1.0 / 48)
    cost, log = ot.emd2(a, a, M, log=True)
    assert cost.dtype == torch.float32 and log["u"].dtype == torch.float32
    expected = oracle(M.double())  # the float32 costs, solved in float64
    assert cost.tolist() == pytest.approx(expected, rel=1e-6)
    cost_np = ot.emd2(a.numpy(), a.numpy(), M.numpy())
    assert cost_np.dtype == np.float32 and np.allclose(cost_np, expected, rtol=1e-6)


@pytest.mark.parametrize("scale", [1e-200, 1e-8, 1e8, 1e200])
def test_tiny_and_huge_costs(scale):
    """Scaled costs keep the plan and scale the cost (the certificate is relative to |M|)."""
    M = costs(4, 40, "points", seed=7)
    ref = ot.emd2(None, None, M)
    cost, log = ot.emd2(None, None, M * scale, log=True)
    assert log["status"] == ["optimal"] * 4
    assert (cost / scale).tolist() == pytest.approx(ref.tolist(), rel=1e-12)


def test_batch_mixing_uniform_and_random_weights():
    """One batch whose problems take different strategies (the assignment solver for the uniform
    ones, the network simplex for the others), handed out in any order: each against POT."""
    pot = pytest.importorskip("ot")
    B, n = 12, 30
    M = costs(B, n, "points", seed=8)
    gen = torch.Generator().manual_seed(9)
    a = torch.full((B, n), 1.0 / n, dtype=F64)
    b = a.clone()
    for p in range(0, B, 3):
        a[p] = torch.rand(n, dtype=F64, generator=gen) + 0.1
        b[p] = torch.rand(n, dtype=F64, generator=gen) + 0.1
        b[p] *= a[p].sum() / b[p].sum()
    cost, log = ot.emd2(a, b, M, log=True, numThreads=2)
    assert log["status"] == ["optimal"] * B
    for p in range(B):
        expected = float(pot.emd2(a[p].numpy(), b[p].numpy(), M[p].numpy(), numItermax=10**9))
        assert float(cost[p]) == pytest.approx(expected, rel=1e-9)
        if p % 3:
            assert log["iterations"][p] <= n  # augmenting paths: the assignment solver


def test_multi_histogram_uniform_columns_share_M():
    """POT's multi-histogram b (problems sharing one M) on the uniform square path."""
    M = costs(1, 50, "integer", seed=10)[0]
    b = torch.full((50, 4), 1.0 / 50, dtype=F64)
    out = ot.emd2(None, b, M)
    assert len(out) == 4 and all(float(c) == pytest.approx(oracle(M[None])[0], rel=1e-12) for c in out)


def test_points_uniform_square_against_pot():
    """emd2_points on uniform square clouds: the assignment solver on costs computed row by row."""
    gen = torch.Generator().manual_seed(11)
    x, y = torch.rand(90, 2, dtype=F64, generator=gen), torch.rand(90, 2, dtype=F64, generator=gen)
    cost = ot.emd2_points(x, y)
    assert float(cost) == pytest.approx(oracle(cdist(x, y)[None])[0], rel=1e-9)


# Bad input on the batch path: the checks and their words are the single call's, for any problem.
def _bad_batch(fault: str):
    B, n = 5, 16
    M = costs(B, n, "points", seed=12)
    a = torch.full((B, n), 1.0 / n, dtype=F64)
    b = a.clone()
    if fault == "nan":
        M[3, 2, 7] = float("nan")
    elif fault == "inf":
        M[4, 0, 0] = float("inf")
    elif fault == "negative weight":
        a[2, 5] = -a[2, 5]
    elif fault == "unbalanced":
        b[1] *= 2
    elif fault == "shape":
        a = a[:4]
    elif fault == "integer":
        M = M.long()
    elif fault == "zero total":
        b[0] = 0
    return a, b, M


@pytest.mark.parametrize("fault, exc, match", [
    ("nan", ValueError, r"^M: costs must be finite"),
    ("inf", ValueError, r"^M: costs must be finite"),
    ("negative weight", ValueError, r"^a: weights must be non-negative"),
    ("unbalanced", ValueError, r"^a and b: total masses differ"),
    ("shape", ValueError, r"^a: expected shape"),
    ("integer", TypeError, r"^M must have a floating-point dtype"),
    ("zero total", ValueError, r"^a and b: each side's total weight must be positive"),
])
def test_bad_input_on_the_batch_path(fault, exc, match):
    a, b, M = _bad_batch(fault)
    with pytest.raises(exc, match=match):
        ot.emd2(a, b, M)
