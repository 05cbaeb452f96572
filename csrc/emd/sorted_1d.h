// Exact 1-D optimal transport by sorting: pygan's torch-free core of pygan.ot.wasserstein_1d,
// emd_1d and emd2_1d on CPU (csrc/emd/sorted_1d.cpp).
//
// With a ground cost |x - y|^p (p >= 1, a convex function of x - y) the optimal plan matches the
// two distributions in sorted order: the loss is the integral over q in [0, 1] of
// |F_u^{-1}(q) - F_v^{-1}(q)|^p. Both quantile functions are step functions with steps at the
// normalised cumulative weights, so one sort per side and a linear merge of the two lists of
// breakpoints give the integral exactly as a finite sum (POT merges with a third sort and two
// binary searches per breakpoint instead). Everything is float64; the sum is compensated.
#pragma once

#include <cstdint>
#include <vector>

namespace pygan::emd {

// One side of a 1-D problem, sorted: values ascending, the normalised cumulative weight at each
// (the last is exactly 1.0), and the original index of each value when a plan is wanted.
struct Sorted1d {
  int64_t size = 0;
  bool uniform = true;          // cumulative weights are (i + 1) / size, not stored
  std::vector<double> values;
  std::vector<double> cumulative;  // empty when uniform
  std::vector<int64_t> index;      // empty unless prepared with want_index
};

// Sorts one side. values: size >= 1 finite numbers; weights: size non-negative finite numbers with
// a positive total, or null for uniform weights. sorted: the caller promises ascending values (no
// sort). want_index: keep the original index of each sorted value (needed for a plan). Throws
// std::invalid_argument on misuse (size < 1).
void sort_1d(int64_t size, const double* values, const double* weights, bool sorted, bool want_index,
             Sorted1d& out);

// The sorted matching's pieces: piece k carries mass values[k] (> 0; the masses total 1) from
// point rows[k] of u to point cols[k] of v (original indices).
struct Plan1d {
  std::vector<int64_t> rows, cols;
  std::vector<double> values;
};

// The OT loss sum_k mass_k |u_k - v_k|^p of the merged pieces (W_p^p for weights normalised to 1),
// and the pieces when plan is non-null (both sides then need want_index). A loss that overflows is
// inf; a piece of zero mass contributes nothing (never 0 * inf).
double merge_1d(const Sorted1d& u, const Sorted1d& v, double p, Plan1d* plan);

}  // namespace pygan::emd
