// Torch-facing entry points of the exact EMD solver (implemented in emd_binding.cpp).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <tuple>

namespace pygan {

// Solutions of B problems, packed into tensors (CPU; float64 and int64).
struct EmdResult {
  at::Tensor cost;        // [B]
  at::Tensor u, v;        // [B, n], [B, m]: centred duals, feasible for every (i, j)
  at::Tensor status;      // [B]: emd::Status values
  at::Tensor iterations;  // [B]: simplex pivots
  at::Tensor rounds;      // [B]: full pricing rounds
  at::Tensor offsets;     // [B + 1]: problem p's plan entries are [offsets[p], offsets[p + 1])
  at::Tensor rows, cols;  // [nnz]: plan entries, row-major within each problem
  at::Tensor values;      // [nnz]
  at::Tensor certificate; // [B, 3]: primal residual, dual violation, duality gap (emd::Solution)
};

// a [B, n] or [n], b [B, m] or [m], M [B, n, m], or [1, n, m] or [n, m]: contiguous float64 CPU
// tensors; a 1-D weight vector, a batch of 1 or a 2-D M is shared by the B problems. B > 1 solves
// the problems in parallel (one per thread); B == 1 parallelises inside the one problem.
// init_u [B, n], init_v [B, m]: a warm start (emd::Options), or empty tensors. threads: how many
// of ATen's threads to use (0: all of at::get_num_threads(); 1: the calling thread alone); the
// process-wide setting is left as it is.
EmdResult emd_dense(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M, int64_t max_iter,
                    const at::Tensor& init_u, const at::Tensor& init_v, int64_t threads = 0);

// a [n], b [m]; rows, cols [k] int64 and costs [k] float64: the only arcs that exist (no
// duplicates, indices in range; checked by pygan.ot). Costs must be finite.
EmdResult emd_sparse(const at::Tensor& a, const at::Tensor& b, const at::Tensor& rows, const at::Tensor& cols,
                     const at::Tensor& costs, int64_t max_iter);

// a [n], b [m], x [n, d], y [m, d]: contiguous float64 CPU tensors. metric: 0 squared Euclidean,
// 1 Euclidean, 2 Euclidean to the power p.
EmdResult emd_points(const at::Tensor& a, const at::Tensor& b, const at::Tensor& x, const at::Tensor& y,
                     int64_t metric, double p, int64_t max_iter);

// The checks pygan.ot makes on a dense problem, in one pass over the inputs (the Python checks,
// which word the error, run only when this says no): a, b and M shaped as for emd_dense. True
// when M and the weights are finite, the weights non-negative with positive totals, and (unless
// rescale) each pair of totals agrees to mass_tol (relative).
bool emd_dense_inputs_ok(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M, double mass_tol,
                         bool rescale);

// The cost of one dense problem (a [n], b [m], M [n, m], as for emd_dense) and its emd::Status as
// an int; status -1 (and no solve) when the inputs fail emd_dense_inputs_ok, whose caller then
// takes the checked path that words the error. pygan.ot.emd2's path for a plain single call: no
// plan, duals or certificate tensors are packed.
std::tuple<double, int64_t> emd2_single(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M,
                                        double mass_tol, bool rescale, int64_t threads);

// The sorted 1-D matchings of B columns (csrc/emd/sorted_1d.h).
struct Emd1dResult {
  at::Tensor cost;        // [B] float64: sum of mass * |x - y|^p, masses normalised to total 1
  at::Tensor offsets;     // [B + 1] int64: column c's pieces are [offsets[c], offsets[c + 1])
  at::Tensor rows, cols;  // [pieces] int64: original indices (empty unless want_plan)
  at::Tensor values;      // [pieces] float64: masses
};

// x [B, n], y [B, m]: contiguous float64 CPU tensors, one column per row (finite). wx: [B, n],
// [1, n] (shared by the B columns) or an empty tensor (uniform); wy likewise (non-negative, positive
// totals; checked by pygan.ot). sorted: the values are ascending already. The columns are spread
// over ATen's threads; a single column sorts its two sides in parallel.
Emd1dResult emd_1d(const at::Tensor& x, const at::Tensor& y, const at::Tensor& wx, const at::Tensor& wy,
                   double p, bool sorted, bool want_plan);

}  // namespace pygan
