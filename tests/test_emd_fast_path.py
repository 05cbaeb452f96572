"""The small-problem fast path of pygan.ot.emd/emd2: the compiled one-pass input check (which must
agree with the torch checks that word the errors), the call without the autograd Function when
nothing is tracked, and the batch spread over threads (same answers for any thread count)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pygan import _build
from pygan import ot as pg
from pygan.ot._convert import _inputs_ok

F64 = torch.float64


def problem(B=1, n=5, m=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(B, n, generator=gen, dtype=F64) + 0.1
    b = torch.rand(B, m, generator=gen, dtype=F64) + 0.1
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    return a, b, torch.rand(B, n, m, generator=gen, dtype=F64)


@pytest.mark.parametrize("B", [1, 3])
def test_compiled_check_accepts_and_refuses(B):
    assert _build.load()
    a, b, M = problem(B)
    assert _inputs_ok(a, b, M, 1e-6, False)
    assert _inputs_ok(a, b, M[:1].contiguous(), 1e-6, False)  # M shared by the B problems
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = M.clone()
        bad[-1, -1, -1] = value
        assert not _inputs_ok(a, b, bad, 1e-6, False)
    for side in ("a", "b"):
        for value in (-1e-3, float("nan"), float("inf")):
            w = (a if side == "a" else b).clone()
            w[-1, 0] = value
            args = (w, b) if side == "a" else (a, w)
            assert not _inputs_ok(*args, M, 1e-6, False)
    zero = torch.zeros_like(a)
    assert not _inputs_ok(zero, b, M, 1e-6, True)  # a zero total, even with rescale
    assert not _inputs_ok(a * 1.01, b, M, 1e-6, False)
    assert _inputs_ok(a * 1.01, b, M, 1e-6, True)  # rescale accepts any positive totals
    assert _inputs_ok(a * (1 + 1e-8), b, M, 1e-6, False)  # within mass_tol


def test_huge_finite_costs_pass_the_check():
    a, b, M = problem()
    M[0, 0, 0] = 1.7e308
    M[0, 1, 1] = -1.7e308
    assert _inputs_ok(a, b, M, 1e-6, False)


@pytest.mark.parametrize("fault, match", [("nan_M", "M"), ("neg_a", "a"), ("inf_b", "b"), ("unbalanced", "masses")])
def test_errors_keep_their_words(fault, match):
    a, b, M = problem()
    a, b, M = a[0].clone(), b[0].clone(), M[0].clone()
    if fault == "nan_M":
        M[1, 2] = float("nan")
    elif fault == "neg_a":
        a[0] = -a[0]
    elif fault == "inf_b":
        b[1] = float("inf")
    else:
        a = a * 2
    for fn in (pg.emd, pg.emd2):
        with pytest.raises(ValueError, match=rf"\b{match}\b"):
            fn(a, b, M)
        with pytest.raises(ValueError, match=rf"\b{match}\b"):
            fn(a.numpy(), b.numpy(), M.numpy())


def test_untracked_cost_has_no_graph_tracked_cost_has_one():
    a, b, M = problem()
    a, b, M = a[0], b[0], M[0]
    cost = pg.emd2(a, b, M)
    assert cost.grad_fn is None and not cost.requires_grad
    Mg = M.clone().requires_grad_()
    cost_g = pg.emd2(a, b, Mg)
    assert cost_g.requires_grad and float(cost_g) == float(cost)
    cost_g.backward()
    torch.testing.assert_close(Mg.grad, pg.emd(a, b, M))
    with torch.no_grad():
        assert pg.emd2(a, b, Mg).grad_fn is None


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_same_answers_for_any_thread_count(threads):
    a, b, M = problem(B=16, n=24, m=20, seed=3)
    serial = [float(pg.emd2(a[i], b[i], M[i])) for i in range(16)]
    cost, log = pg.emd2(a, b, M, numThreads=threads, log=True)
    assert cost.tolist() == pytest.approx(serial, rel=1e-12, abs=1e-15)
    assert log["status"] == ["optimal"] * 16


def test_thread_count_never_touched(monkeypatch):
    # numThreads caps the solve's threads inside the core: torch's process-wide setting is neither
    # changed nor restored (another Python thread would see the change).
    a, b, M = problem(B=4)
    before = torch.get_num_threads()

    def refuse(n):
        raise AssertionError(f"torch.set_num_threads({n}) called by pygan.ot")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    pg.emd2(a, b, M, numThreads=1)
    pg.emd2(a, b, M, numThreads=before + 3)  # more than torch has: all of them
    pg.emd(a[0].numpy(), b[0].numpy(), M[0].numpy(), numThreads=2)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [0, 1, 2, 5])
def test_one_large_problem_same_answer_for_any_thread_cap(threads):
    # Above 128 x 128 pairs the single problem's pricing passes run on the threads (in at most
    # `threads` chunks); every cap gives the same optimum.

    g = torch.Generator().manual_seed(7)
    x, y = torch.rand(300, 2, generator=g), torch.rand(260, 2, generator=g) + 0.5
    M = torch.cdist(x, y).double().contiguous()
    a = torch.rand(300, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(260, generator=g, dtype=torch.float64) + 0.1
    a, b = a / a.sum(), b / b.sum()
    empty = torch.empty(0, 0, dtype=torch.float64)
    ref = _build.module().emd_dense(a, b, M, -1, empty, empty)
    got = _build.module().emd_dense(a, b, M, -1, empty, empty, threads)
    assert got[3].tolist() == [1]  # optimal
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-12)
    assert float(got[0]) == pytest.approx(float(pg.emd2(a, b, M, numThreads=max(threads, 1))), rel=1e-12)


def test_binding_refuses_a_negative_thread_count():

    a, b, M = problem(B=1)
    empty = torch.empty(0, 0, dtype=torch.float64)
    with pytest.raises(ValueError, match="threads"):
        _build.module().emd_dense(a[0], b[0], M[0], -1, empty, empty, -1)


def test_multi_histogram_uses_the_checked_path():
    a, b, M = problem(B=3, n=6, m=5, seed=4)
    costs = pg.emd2(a[0].numpy(), b.T.numpy().copy(), M[0].numpy())
    assert len(costs) == 3
    expected = [float(pg.emd2(a[0], b[i], M[0])) for i in range(3)]
    np.testing.assert_allclose(np.asarray(costs, dtype=float), expected, rtol=1e-12)
    bad = b.T.numpy().copy()
    bad[0, 1] = -1.0
    with pytest.raises(ValueError, match=r"\bb\b"):
        pg.emd2(a[0].numpy(), bad, M[0].numpy())


def test_without_the_extension_the_torch_checks_run(monkeypatch):
    import pygan.ot._convert as convert

    monkeypatch.setattr(convert._build, "load", lambda: False)
    a, b, M = problem()
    assert not _inputs_ok(a, b, M, 1e-6, False)  # "not confirmed": the caller runs the torch checks
    M[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"\bM\b"):
        pg.emd2(a[0], b[0], M[0])


def _solved(r):
    """The binding's tuple with the plan's entries as a dense [B, n, m] plan, for comparison."""
    cost, u, v, status, _, _, offsets, rows, cols, values, _ = r
    B, n, m = u.shape[0], u.shape[1], v.shape[1]
    plans = torch.zeros(B, n, m, dtype=F64)
    for p in range(B):
        lo, hi = int(offsets[p]), int(offsets[p + 1])
        plans[p, rows[lo:hi], cols[lo:hi]] = values[lo:hi]
    return cost, u, v, status, plans


@pytest.mark.parametrize("B", [1, 4])
def test_binding_takes_shared_weights_and_a_2d_M_unexpanded(B):
    """A 1-D a or b, and a 2-D (or batch-of-1) M, are shared by the B problems: the same answers,
    bit for bit, as the expanded copies."""
    assert _build.load()
    ext, empty = _build.module(), torch.empty(0, 0, dtype=F64)
    a, b, M = problem(B, n=7, m=6, seed=11)
    a = a[:1].expand(B, -1).contiguous()  # one a for every problem
    Ms = M[:1].contiguous()  # one M for every problem
    expected = _solved(ext.emd_dense(a, b, Ms.expand(B, -1, -1).contiguous(), -1, empty, empty))
    for args in ((a[0], b, Ms), (a, b, Ms), (a[0], b, Ms[0] if B == 1 else Ms)):
        got = _solved(ext.emd_dense(*args, -1, empty, empty))
        for x, y in zip(got, expected):
            assert torch.equal(x, y)
        assert _inputs_ok(*args, 1e-6, False)
    if B == 1:  # 1-D weights and a 2-D M: the single problem as the API passes it
        got = _solved(ext.emd_dense(a[0], b[0], Ms[0], -1, empty, empty))
        for x, y in zip(got, expected):
            assert torch.equal(x, y)


def test_binding_refuses_disagreeing_batches():
    ext, empty = _build.module(), torch.empty(0, 0, dtype=F64)
    a, b, M = problem(3, n=5, m=4)
    for args in ((a[:2].contiguous(), b, M), (a, b[:2].contiguous(), M), (a, b, M[:2].contiguous()),
                 (a[:, :4].contiguous(), b, M), (a, b, M[0, :, :3].contiguous())):
        with pytest.raises(ValueError, match="disagree"):
            ext.emd_dense(*args, -1, empty, empty)
        with pytest.raises(ValueError, match="disagree"):
            ext.emd_dense_inputs_ok(*args, 1e-6, False)
    with pytest.raises(ValueError, match=r"\[n\] or \[B, n\]"):
        ext.emd_dense(a[None], b, M, -1, empty, empty)
    with pytest.raises(ValueError, match="contiguous float64"):
        ext.emd_dense(a.float(), b, M, -1, empty, empty)


@pytest.mark.parametrize("case", ["single", "batched", "multi"])
def test_reference_fallback_takes_the_shared_shapes(case, monkeypatch):
    """Without the extension the reference solver gets the same unexpanded shapes and gives the
    answers the core gives."""
    a, b, M = problem(3, n=5, m=4, seed=5)
    args = {"single": (a[0], b[0], M[0]), "batched": (a[0], b, M),
            "multi": (a[0].numpy(), b.T.numpy().copy(), M[0].numpy())}[case]
    expected = pg.emd2(*args)
    monkeypatch.setattr(_build, "load", lambda: False)
    got = pg.emd2(*args)
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-9)


def _general_only(monkeypatch):
    """Makes the plain single-problem path refuse, so emd2 takes the general one."""
    from pygan.ot import dense

    monkeypatch.setattr(dense, "_plain_single", lambda a, b, M: None)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 40), seed=st.integers(0, 2**31 - 1),
       kind=st.sampled_from(["numpy", "torch", "torch_noncontig", "numpy_fortran"]),
       zero_rows=st.booleans())
def test_plain_single_call_equals_the_general_path(n, m, seed, kind, zero_rows):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 1.0, m)
    if zero_rows and n > 1:
        a[rng.integers(0, n)] = 0.0
    a, b = a / a.sum(), b / b.sum()
    M = rng.uniform(0.0, 10.0, (n, m)) ** rng.uniform(0.5, 3.0)
    if kind == "numpy_fortran":
        M = np.asfortranarray(M)
    args = (a, b, M) if kind.startswith("numpy") else tuple(torch.from_numpy(x) for x in (a, b, M))
    if kind == "torch_noncontig":
        args = (args[0], args[1], args[2].T.contiguous().T)
    plain = pg.emd2(*args)
    with pytest.MonkeyPatch.context() as mp:
        _general_only(mp)
        general = pg.emd2(*args)
    assert type(plain) is type(general)
    assert float(plain) == float(general)  # the same core, the same arithmetic
    if isinstance(plain, torch.Tensor):
        assert plain.dtype == general.dtype and plain.shape == general.shape and plain.grad_fn is None


def test_plain_single_call_skips_the_general_path(monkeypatch):
    from pygan.ot import dense

    a, b, M = problem(n=7, m=6, seed=11)

    def refuse(*args, **kwargs):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(dense, "_solve_dense", refuse)
    for args in ((a[0], b[0], M[0]), (a[0].numpy(), b[0].numpy(), M[0].numpy())):
        pg.emd2(*args)
        pg.emd2(*args, numThreads=1)


@pytest.mark.parametrize("variant", ["log", "return_matrix", "numItermax", "float32", "grad", "batched",
                                     "uniform_none", "list", "potentials_init", "sparse"])
def test_other_calls_take_the_general_path(variant, monkeypatch):
    from pygan.ot import dense

    a, b, M = (x[0] for x in problem(n=6, m=5, seed=12))
    calls = []
    real = dense._solve_dense
    monkeypatch.setattr(dense, "_solve_dense", lambda *args, **kw: calls.append(1) or real(*args, **kw))
    kwargs = {}
    if variant == "log":
        kwargs["log"] = True
    elif variant == "return_matrix":
        kwargs["return_matrix"] = True
    elif variant == "numItermax":
        kwargs["numItermax"] = 10**6
    elif variant == "float32":
        M = M.float()
    elif variant == "grad":
        M = M.clone().requires_grad_()
    elif variant == "batched":
        a, b, M = a[None], b[None], M[None]
    elif variant == "uniform_none":
        a = b = None
    elif variant == "list":
        a, b, M = a.tolist(), b.tolist(), M.tolist()
    elif variant == "potentials_init":
        kwargs["potentials_init"] = (torch.zeros(6, dtype=F64), torch.zeros(5, dtype=F64))
    if variant == "sparse":
        out = pg.emd2(a, b, M.to_sparse())
        assert calls == []  # a sparse M has its own solver
    else:
        out = pg.emd2(a, b, M, **kwargs)
        assert calls == [1]
    cost = out[0] if isinstance(out, tuple) else out
    a0, b0, M0 = (x[0] for x in problem(n=6, m=5, seed=12))
    if variant == "uniform_none":
        a0, b0 = torch.full((6,), 1 / 6, dtype=F64), torch.full((5,), 1 / 5, dtype=F64)
    assert float(cost) == pytest.approx(float(pg.emd2(a0, b0, M0)), rel=1e-6)


def test_plain_path_leaves_bad_input_and_warnings_to_the_general_path():
    a, b, M = (x[0].numpy() for x in problem(n=5, m=4, seed=13))
    with pytest.raises(ValueError, match="masses"):
        pg.emd2(a, b * 2.0, M)
    bad = M.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="M"):
        pg.emd2(a, b, bad)
    with pytest.raises(ValueError, match="a"):
        pg.emd2(-a, b, M)
    # A status other than optimal sends the call to the general path, which warns with the
    # certificate's figures (the statuses themselves: test_emd_pot_compat.py).
    from pygan.ot import dense

    real_module = _build.module()

    class Imprecise:
        def __getattr__(self, name):
            return getattr(real_module, name)

        def emd2_single(self, *args):
            return 0.0, 4

    calls = []
    real_solve = dense._solve_dense
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_build, "module", lambda: Imprecise())
        mp.setattr(dense, "_solve_dense", lambda *args, **kw: calls.append(1) or real_solve(*args, **kw))
        cost = pg.emd2(a, b, M)
    assert calls == [1] and cost == pytest.approx(float(pg.emd2(a, b, M)), rel=1e-12) and cost > 0
