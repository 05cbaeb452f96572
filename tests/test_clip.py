"""pygan.ops.clip_ against torch.clamp_ (its reference), on every dtype, layout and edge case."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pygan import ops, reference
from testing import DEVICES, FLOAT_DTYPES, SHAPES, layouts, special_values


def expected(tensors, lo, hi):
    out = [t.clone() for t in tensors]
    reference.clip_(out, lo, hi)
    return out


def assert_same(actual, wanted):
    # torch.clamp is exact: demand bit equality (NaN == NaN), not a tolerance.
    for a, w in zip(actual, wanted):
        torch.testing.assert_close(a, w, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_clamp_every_layout(backend, device, dtype, shape):
    base = (torch.randn(shape, dtype=torch.float64) * 2).to(dtype=dtype, device=device)
    for name, t in layouts(base):
        wanted = expected([t], -0.7, 0.3)
        ops.clip_([t], -0.7, 0.3)
        assert_same([t], wanted)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bounds", [(-1.0, 1.0), (0.0, 0.0), (None, 0.25), (-0.25, None), (-1e30, 1e30),
                                    (float("-inf"), float("inf")), (0.1, 0.2)])
def test_special_values_and_bounds(backend, dtype, bounds):
    t = special_values(dtype).repeat(5)  # 45 elements: a vector body and a tail
    wanted = expected([t], *bounds)
    ops.clip_([t], *bounds)
    assert_same([t], wanted)
    assert torch.isnan(t).sum() == 5  # NaN propagates, exactly as torch.clamp


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bound", [1e30, 1e300])
def test_bounds_beyond_the_dtype_range_in_every_layout(backend, device, dtype, bound):
    # Rounded to the dtype (+-inf beyond its range) on the fused and the strided path alike.
    base = torch.cat([special_values(torch.float64), torch.randn(55, dtype=torch.float64)])
    base = base.reshape(8, 8).to(dtype=dtype, device=device)
    tensors = [t for _, t in layouts(base)]
    wanted = expected(tensors, -bound, bound)
    ops.clip_(tensors, -bound, bound)
    assert_same(tensors, wanted)


def test_mixed_dtypes_shapes_and_a_critic(backend):
    critic = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    extra = [torch.randn(100, dtype=d) for d in FLOAT_DTYPES] + [torch.randn(3, 4).t(), torch.randn(0, 5)]
    tensors = [p.detach() for p in critic.parameters()] + extra
    wanted = expected(tensors, -0.01, 0.01)
    ops.clip_(tensors, -0.01, 0.01)
    assert_same(tensors, wanted)


def test_many_tensors_cross_parallel_chunks(backend):
    # Sizes around the vector width and the parallel grain, so chunk edges fall inside tensors.
    sizes = [1, 15, 16, 17, 31, 33, 32767, 32768, 32769, 70001, 3, 0, 5]
    tensors = [torch.randn(n) * 3 for n in sizes]
    wanted = expected(tensors, -1.5, 1.5)
    ops.clip_(tensors, -1.5, 1.5)
    assert_same(tensors, wanted)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    dtype=st.sampled_from(FLOAT_DTYPES),
    lo=st.floats(-10, 10, allow_nan=False),
    width=st.floats(0, 10, allow_nan=False),
    data=st.data(),
)
def test_hypothesis_values(sizes, dtype, lo, width, data):
    values = st.floats(allow_nan=True, allow_infinity=True, width=16 if dtype == torch.float16 else 32)
    # A short drawn pattern tiled to each size: values hypothesis chooses, at every vector-lane position.
    pattern = torch.tensor(data.draw(st.lists(values, min_size=1, max_size=24)), dtype=torch.float64)
    tensors = [pattern.repeat(n // len(pattern) + 1)[:n].roll(n % 7).to(dtype) for n in sizes]
    wanted = expected(tensors, lo, lo + width)
    ops.clip_(tensors, lo, lo + width)
    assert_same(tensors, wanted)


@pytest.mark.parametrize("make", [
    lambda ps: ps,                      # list
    lambda ps: tuple(ps),               # tuple
    lambda ps: (p for p in ps),         # generator, e.g. critic.parameters()
    lambda ps: ps[0],                   # a single tensor
])
def test_accepts_any_iterable(backend, make):
    ps = [torch.randn(10), torch.randn(3, 3)]
    wanted = expected(ps, -0.1, 0.1)
    ops.clip_(make(ps), -0.1, 0.1)
    n = 1 if isinstance(make(ps), torch.Tensor) else 2
    assert_same(ps[:n], wanted[:n])


def test_leaf_parameters_without_no_grad(backend):
    critic = torch.nn.Linear(4, 3)
    versions = [p._version for p in critic.parameters()]
    ops.clip_(critic.parameters(), -0.01, 0.01)
    for p, v in zip(critic.parameters(), versions):
        assert p.requires_grad and p.grad_fn is None and p.abs().max() <= 0.01
        assert p._version > v  # autograd can tell the tensor changed


def test_clipping_a_tensor_saved_for_backward_is_caught(backend):
    p = torch.nn.Parameter(torch.randn(5))
    loss = (p * p).sum()  # saves p for backward
    ops.clip_([p], -0.01, 0.01)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_opcheck():
    ts = [torch.randn(3, 4), torch.randn(17).double(), torch.randn(2, 3).half()]
    torch.library.opcheck(torch.ops.pygan.clip_.default, (ts, -0.5, 0.5))
    torch.library.opcheck(torch.ops.pygan.clip_.default, ([torch.randn(5)], None, 0.0))


def test_torch_compile():
    @torch.compile(fullgraph=True, backend="inductor")
    def clip_then_use(params, x):
        torch.ops.pygan.clip_.default(params, -0.1, 0.1)
        return params[0] * x

    params = [torch.randn(8), torch.randn(3, 3)]
    wanted = expected(params, -0.1, 0.1)
    out = clip_then_use(params, 2.0)
    assert_same(params, wanted)
    torch.testing.assert_close(out, wanted[0] * 2.0)


# ---- Bad input: a clear error naming the argument, and nothing half-applied. ----

BAD_TENSORS = [
    (lambda: torch.arange(5), TypeError, "dtype"),
    (lambda: torch.ones(3, dtype=torch.bool), TypeError, "dtype"),
    (lambda: torch.randn(3, dtype=torch.complex64), TypeError, "dtype"),
    (lambda: torch.randn(3).to_sparse(), TypeError, "layout|sparse"),
    (lambda: torch.randn(1, 3).expand(4, 3), ValueError, "share memory"),
]


@pytest.mark.parametrize("make_bad,error,match", BAD_TENSORS)
def test_bad_tensor_is_rejected_before_anything_changes(backend, make_bad, error, match):
    good = torch.randn(100) * 5
    before = good.clone()
    with pytest.raises(error, match=match) as info:
        ops.clip_([good, make_bad()], -0.1, 0.1)
    assert "tensors[1]" in str(info.value)
    assert torch.equal(good, before)


@pytest.mark.parametrize("lo,hi,error,match", [
    (float("nan"), 1.0, ValueError, "min is NaN"),
    (0.0, float("nan"), ValueError, "max is NaN"),
    (1.0, -1.0, ValueError, "greater than"),
    (None, None, ValueError, "at least one"),
    ("0", 1.0, TypeError, "min must be a real number"),
    (0.0, [1.0], TypeError, "max must be a real number"),
])
def test_bad_bounds(backend, lo, hi, error, match):
    t = torch.randn(10)
    before = t.clone()
    with pytest.raises(error, match=match):
        ops.clip_([t], lo, hi)
    assert torch.equal(t, before)


def test_non_tensor_element(backend):
    with pytest.raises(TypeError, match=r"tensors\[1\] is a int"):
        ops.clip_([torch.randn(3), 3], -1.0, 1.0)
    with pytest.raises(TypeError, match="iterable of tensors"):
        ops.clip_(3.0, -1.0, 1.0)


def test_empty_list_is_a_no_op_but_bounds_are_checked(backend):
    ops.clip_([], -1.0, 1.0)
    with pytest.raises(ValueError, match="greater than"):
        ops.clip_([], 1.0, -1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_mixed_devices(backend):
    ts = [torch.randn(100), torch.randn(100, device="cuda"), torch.randn(5, 5, device="cuda").half()]
    wanted = expected(ts, -0.3, 0.3)
    ops.clip_(ts, -0.3, 0.3)
    assert_same(ts, wanted)


# ---- Meta tensors: the dispatcher would run the meta kernel for the whole list and skip the rest. ----

def test_meta_tensor_among_real_ones_is_refused(backend):
    cpu = torch.full((4,), 5.0)
    with pytest.raises(ValueError, match=r"clip_: tensors\[1\] is on the meta device but tensors\[0\] is on cpu"):
        ops.clip_([cpu, torch.full((4,), 5.0, device="meta")], -1.0, 1.0)
    assert torch.equal(cpu, torch.full((4,), 5.0))  # before the fix: no error, and left unclipped
    with pytest.raises(ValueError, match=r"tensors\[0\] is on the meta device"):
        ops.clip_([torch.empty(3, device="meta"), cpu], -1.0, 1.0)


def test_all_meta_list_is_a_shape_only_no_op(backend):
    ops.clip_([torch.empty(3, device="meta"), torch.empty(2, 2, device="meta")], -1.0, 1.0)
