// A pricing round of the restricted simplex (see emd::solve in transport.cpp): every (row,
// column) pair against the simplex's potentials, each row's most violating arcs added.
#include <algorithm>
#include <limits>
#include <vector>

#include "emd/internal.h"

namespace pygan::emd {

PricingRound::PricingRound(int64_t m, bool matrix, const CostRows& cost_rows, const Active& act,
                           int64_t add_per_row, const ParallelFor& parallel_for, int64_t grain)
    : m_(m), matrix_(matrix), cost_rows_(cost_rows), act_(act), add_per_row_(add_per_row),
      parallel_for_(parallel_for), grain_(grain) {
  const size_t na = act.rows.size();
  add_key_.resize(na * add_per_row);
  add_idx_.resize(add_key_.size());
  add_size_.resize(na);
  col_pi_.resize(m);
  col_lv_.resize(m);
}

int64_t PricingRound::round(const TransportSimplex& simplex, const std::vector<double>& shift_r,
                            const std::vector<double>& shift_c,
                            const std::function<void(int32_t, int32_t, double)>& add_arc) {
  // With the simplex's own potentials, unshifted: the tolerance of violation_score depends on
  // their magnitudes, so a shift (normalise_potentials) would make arcs the simplex has just
  // declared non-entering look violated, and degenerate pivots on them could go on round after
  // round.
  const int64_t m = m_, add_per_row = add_per_row_;
  const int32_t na = int32_t(act_.rows.size()), ma = int32_t(act_.cols.size());
  const double* pi = simplex.potentials();
  const int32_t* lv = simplex.levels();
  // Inactive columns: potential -inf and a level far below any row's, so their score is +inf.
  constexpr int32_t kInactiveLevel = -(1 << 29);
  std::fill(col_pi_.begin(), col_pi_.end(), -std::numeric_limits<double>::infinity());
  std::fill(col_lv_.begin(), col_lv_.end(), kInactiveLevel);
  for (int32_t l = 0; l < ma; ++l) col_pi_[act_.cols[l]] = pi[na + l] + shift_c[l], col_lv_[act_.cols[l]] = lv[na + l];
  const double* col_pi = col_pi_.data();
  const int32_t* col_lv = col_lv_.data();
  parallel_for_(0, na, grain_, [&](int64_t lo, int64_t hi) {
    std::vector<double> buffer(matrix_ ? 0 : m), score(m);
    for (int64_t r = lo; r < hi; ++r) {
      const double* c = cost_rows_.row(act_.rows[r], buffer.data());
      const double pr = pi[r] - shift_r[r];  // NOTE: [Warm start]: the potentials of C
      const int32_t lr = lv[r];
      // Scores first (a loop the compiler vectorises), then the rare negatives.
      // Inactive columns have potential -inf: their score is +inf, never negative.
      // (An explicit min reduction: the compiler does not vectorise one of doubles by itself.)
      double lowest = 0.0;
      double* sc = score.data();
#pragma omp simd reduction(min : lowest)
      for (int64_t j = 0; j < m; ++j) {
        sc[j] = violation_score(c[j], pr, col_pi[j], lr - col_lv[j]);
        lowest = std::min(lowest, sc[j]);
      }
      SmallestK worst{add_key_.data() + r * add_per_row, add_idx_.data() + r * add_per_row, int32_t(add_per_row)};
      if (lowest < 0) {
        for (int64_t j = 0; j < m; ++j)
          if (score[j] < 0) worst.push(score[j], int32_t(j));
      }
      add_size_[r] = worst.size;
    }
  });
  int64_t added = 0;
  for (int32_t r = 0; r < na; ++r) {
    for (int32_t t = 0; t < add_size_[r]; ++t) {
      const int32_t j = add_idx_[size_t(r) * add_per_row + t];
      add_arc(r, act_.col_pos[j], cost_rows_.at(act_.rows[r], j));
    }
    added += add_size_[r];
  }
  return added;
}

}  // namespace pygan::emd
