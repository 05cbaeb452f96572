// NOTE: [Spatial hierarchy] (hierarchy.cpp): the coarse-to-fine start of the point-cloud path and
// its local pricing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "emd/internal.h"

namespace pygan::emd {

// Scores one row's pairs for a pricing pass over columns given as points: for t in [t0, t1), the
// pair (row point x, column at array index index(t)) gets sc[t - t0] = violation_score of its cost
// (the metric on the squared distance, from the structure-of-arrays coordinates cxy: coordinate k
// of array index l at cxy[k * stride + l]) against the row's reduced potential pr and level lr and
// the column's cpi / clv at the same index. index is the identity for a pass over a contiguous run
// (BoundedPricing, whose arrays are in block order) or a gather (the local rounds' neighbourhood
// list). Where a squared distance overflows (coordinates above ~1e154) while the cost may not, the
// pairs are scored again with exact_cost(t) (CostRows' scaled formula). Returns the lowest score
// (0 when nothing violates): callers then push the negative ones. sc holds t1 - t0 values.
template <Metric kMetric, class Index, class ExactCost>
inline double score_pairs(const double* x, int64_t d, double p, const double* cxy, int64_t stride,
                          const double* cpi, const int32_t* clv, double pr, int32_t lr, int32_t t0,
                          int32_t t1, Index index, ExactCost exact_cost, double* sc) {
  double lowest = 0.0, highest = 0.0;
  if (d == 2) {
    const double x0 = x[0], x1 = x[1];
    const double* y0 = cxy;
    const double* y1 = cxy + stride;
#pragma omp simd reduction(min : lowest) reduction(max : highest)
    for (int32_t t = t0; t < t1; ++t) {
      const int32_t l = index(t);
      const double d0 = x0 - y0[l], d1 = x1 - y1[l];
      const double c = cost_from_square<kMetric>(d0 * d0 + d1 * d1, p);
      highest = std::max(highest, c);
      sc[t - t0] = violation_score(c, pr, cpi[l], lr - clv[l]);
      lowest = std::min(lowest, sc[t - t0]);
    }
  } else {
    for (int32_t t = t0; t < t1; ++t) sc[t - t0] = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      const double xk = x[k];
      const double* yk = cxy + k * stride;
#pragma omp simd
      for (int32_t t = t0; t < t1; ++t) sc[t - t0] += (xk - yk[index(t)]) * (xk - yk[index(t)]);
    }
#pragma omp simd reduction(min : lowest) reduction(max : highest)
    for (int32_t t = t0; t < t1; ++t) {
      const int32_t l = index(t);
      const double c = cost_from_square<kMetric>(sc[t - t0], p);
      highest = std::max(highest, c);
      sc[t - t0] = violation_score(c, pr, cpi[l], lr - clv[l]);
      lowest = std::min(lowest, sc[t - t0]);
    }
  }
  if (!(highest < std::numeric_limits<double>::infinity())) {
    lowest = 0.0;
    for (int32_t t = t0; t < t1; ++t) {
      const int32_t l = index(t);
      sc[t - t0] = violation_score(exact_cost(t), pr, cpi[l], lr - clv[l]);
      lowest = std::min(lowest, sc[t - t0]);
    }
  }
  return lowest;
}

// NOTE: [Bounded pricing] (shielded_pricing.cpp): a full pricing round for costs given as points
// that skips the blocks of pairs a distance bound proves non-violating; the same arcs as
// PricingRound would add (each row's add_per_row most violating), the same proof.
class BoundedPricing {
 public:
  void build(const Costs& costs, const Active& act);
  int64_t round(const TransportSimplex& simplex, const std::vector<double>& shift_r, const std::vector<double>& shift_c,
                const CostRows& cost_rows, const Active& act, int64_t add_per_row, const ParallelFor& parallel_for,
                const std::function<void(int32_t, int32_t, double)>& add_arc);
  int64_t pairs_priced = 0;  // in the last round
  // Whether the last round skipped enough to beat PricingRound's vectorised pass over every pair
  // (with duals whose bound is loose, as for W1 along a translation, it may not).
  bool useful() const { return useful_; }

 private:
  // The pass over the pairs with the metric fixed (pairs_priced is its result); fills key_, idx_
  // and size_.
  template <Metric kMetric>
  int64_t price(const TransportSimplex& simplex, const std::vector<double>& shift_r, const CostRows& cost_rows,
                const Active& act, int64_t add_per_row, bool levels, const std::vector<double>& vmax,
                const ParallelFor& parallel_for);
  Costs costs_;
  std::vector<int32_t> row_order_, row_start_, col_order_, col_start_;
  std::vector<double> row_centre_, row_radius_, col_centre_, col_radius_, key_;
  std::vector<int32_t> idx_, size_;
  // Block order, structure of arrays, so that a row's bounds against every column block and its
  // pairs against a run of blocks are unit-stride loops that vectorise: the blocks' centres
  // (coordinate k of block q at col_centre_soa_[k * blocks + q]), the columns' coordinates
  // (coordinate k of the s-th column in block order at col_xy_[k * ma + s]), and per round the
  // columns' potentials and levels (col_pi_, col_lv_; column col_order_[s]).
  std::vector<double> col_centre_soa_, col_xy_, col_pi_;
  std::vector<int32_t> col_lv_;
  bool useful_ = true;
};

// What the spatial start gives emd::solve for costs given as points.
struct SpatialStart {
  // per_row[r] (active row r): its first arcs' active columns, any order, possibly repeated.
  std::vector<std::vector<int32_t>> per_row;
  double max_abs = 0.0;  // an upper bound of every |cost| between active points
  // The local pricing's neighbourhoods: active row r's cell row_cell[r]; cell c's columns
  // near_cols[near_start[c] .. near_start[c + 1]).
  std::vector<int32_t> row_cell, near_start, near_cols;
  int64_t local_rounds = 0;
  BoundedPricing bounded;  // the full rounds' pricing (built with the start)

  // Builds the start: clusters each cloud's active points into k-d cells of about four, solves
  // the problem between the cells' centroids with the cells' masses (recursively, through
  // emd::solve) and prolongates it (the NOTE in hierarchy.cpp). Fills per_row, row_dual and
  // col_dual (na / ma values: the duals that rank the first arcs for the feasible fill), max_abs
  // and the neighbourhoods. Returns false, with nothing usable filled, when it does not apply
  // (costs that may overflow, a problem too small to coarsen): the caller then starts as for a
  // matrix.
  bool build(const Costs& costs, const Active& act, const std::vector<double>& supply,
             const std::vector<double>& demand, const Options& options, const ParallelFor& parallel_for,
             std::vector<double>& row_dual, std::vector<double>& col_dual);

  // A local pricing round: prices each active row against the columns of its cell's
  // neighbourhood only and adds its add_per_row most violating arcs (as PricingRound does for
  // every pair). Returns how many were added. Finding none proves nothing: the full round must
  // then run.
  int64_t round(const TransportSimplex& simplex, const std::vector<double>& shift_r, const std::vector<double>& shift_c,
                const CostRows& cost_rows, const Active& act, int64_t add_per_row, const ParallelFor& parallel_for,
                const std::function<void(int32_t, int32_t, double)>& add_arc);

 private:
  template <Metric kMetric>
  void price_local(const TransportSimplex& simplex, const std::vector<double>& shift_r, const CostRows& cost_rows,
                   const Active& act, int64_t add_per_row, const ParallelFor& parallel_for);
  // For the local rounds' vectorised pass: the active columns' coordinates, structure of arrays
  // (coordinate k of active column l at col_xy_[k * ma + l]), and per round their potentials and
  // levels; the points themselves (costs_); the round's most violating arcs per row.
  Costs costs_;
  std::vector<double> col_xy_, col_pi_, key_;
  std::vector<int32_t> col_lv_, idx_, size_;
};

}  // namespace pygan::emd
