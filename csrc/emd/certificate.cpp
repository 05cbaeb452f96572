// The certificate of a dense/points solution (NOTE: [Certificate]), shared by every strategy.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "emd/internal.h"

namespace pygan::emd {

bool certify(int64_t n, int64_t m, const double* a, const double* b_scaled, double sum_a, double abs_cost,
             const CostRows& cost_rows, bool matrix, const ParallelFor& parallel_for, int64_t grain,
             Solution& sol) {
  const double inf = std::numeric_limits<double>::infinity();
  std::mutex merge_mutex;
  // NOTE: [Certificate]
  // The answer is checked, not trusted: the plan's marginals (a pass over its <= n + m - 1
  // entries), dual feasibility on *every* pair (one pass over the costs, like a pricing round) and
  // the duality gap. Each figure is compared with the rounding float64 allows for the numbers it
  // is computed from: a pair's violation with kCertTol * (|u_i| + |v_j| + |C_ij|), the gap with
  // kCertTol * (sum P|C| + sum a|u| + sum b|v|), the marginals with kCertTol * sum(a). An
  // "optimal" result whose certificate fails one of these is reported Imprecise, never Optimal.
  // A zero-mass row (a_i = 0) may come with u_i = +inf: it then gets its c-transform here, in the
  // same pass over its costs (emd::solve leaves those rows to this pass).
  // (Explicit simd reductions: without -ffast-math a max of doubles does not vectorise.)
  constexpr double kCertTol = 1e-10;
  constexpr double kPairTol = 1e-12;
  std::vector<double> row_sum(n, 0.0), col_sum(m, 0.0);
  for (size_t t = 0; t < sol.values.size(); ++t) row_sum[sol.rows[t]] += sol.values[t], col_sum[sol.cols[t]] += sol.values[t];
  double primal = 0.0;
  for (int64_t i = 0; i < n; ++i) primal = std::max(primal, std::fabs(row_sum[i] - a[i]));
  for (int64_t j = 0; j < m; ++j) primal = std::max(primal, std::fabs(col_sum[j] - b_scaled[j]));
  double dual = 0.0;
  bool pairs_ok = true;
  parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
    std::vector<double> buffer(matrix ? 0 : m);
    double worst = 0.0;
    bool ok = true;
    for (int64_t i = lo; i < hi; ++i) {
      const double* c = cost_rows.row(i, buffer.data());
      const double* v = sol.v.data();
      if (!(a[i] > 0) && sol.u[i] == inf) {
        // A zero-mass row whose dual the caller left to this pass: its c-transform
        // min_j C_ij - v_j (the largest u_i feasible for every pair of the row), from the
        // cost row just computed.
        double best = inf;
#pragma omp simd reduction(min : best)
        for (int64_t j = 0; j < m; ++j) best = std::min(best, c[j] - v[j]);
        sol.u[i] = best;
      }
      const double ui = sol.u[i];
      double row_worst = 0.0, excess = -inf;
#pragma omp simd reduction(max : row_worst, excess)
      for (int64_t j = 0; j < m; ++j) {
        const double viol = ui + v[j] - c[j];
        row_worst = std::max(row_worst, viol);
        excess = std::max(excess, viol - kPairTol * (std::fabs(ui) + std::fabs(v[j]) + std::fabs(c[j])));
      }
      worst = std::max(worst, row_worst);
      ok = ok && !(excess > 0) && std::isfinite(row_worst);
    }
    std::lock_guard<std::mutex> guard(merge_mutex);
    dual = std::max(dual, worst);
    pairs_ok = pairs_ok && ok;
  });
  double dual_obj = 0.0, dual_abs = 0.0;
  for (int64_t i = 0; i < n; ++i) dual_obj += a[i] * sol.u[i], dual_abs += a[i] * std::fabs(sol.u[i]);
  for (int64_t j = 0; j < m; ++j) dual_obj += b_scaled[j] * sol.v[j], dual_abs += b_scaled[j] * std::fabs(sol.v[j]);
  sol.primal_residual = primal;
  sol.dual_violation = dual;
  sol.duality_gap = std::fabs(sol.cost - dual_obj);
  return primal <= kCertTol * sum_a && pairs_ok &&
         sol.duality_gap <= kCertTol * (abs_cost + dual_abs);
}

}  // namespace pygan::emd
