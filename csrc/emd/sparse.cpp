// pygan::emd::solve_sparse: the network simplex over a given arc list (a sparse cost matrix, where
// a missing entry means "no arc", as in POT 0.9.7's sparse emd). One simplex run over every listed
// arc; no pricing rounds are needed since no other arc exists. The artificial arcs' symbolic big-M
// (network_simplex.h) makes an infeasible arc list visible as mass left on them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "emd/duals.h"
#include "emd/emd.h"
#include "emd/network_simplex.h"

namespace pygan::emd {

Solution solve_sparse(int64_t n, int64_t m, const double* a, const double* b, const ArcList& arcs,
                      const Options& options) {
  if (n <= 0 || m <= 0) throw std::invalid_argument("emd::solve_sparse: n and m must be positive");
  if (n + m >= std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("emd::solve_sparse: n + m must fit in 32 bits");
  std::vector<int32_t> row_pos(n, -1), col_pos(m, -1), rows, cols;
  double sum_a = 0.0, sum_b = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (a[i] > 0) row_pos[i] = int32_t(rows.size()), rows.push_back(int32_t(i)), sum_a += a[i];
  for (int64_t j = 0; j < m; ++j)
    if (b[j] > 0) col_pos[j] = int32_t(cols.size()), cols.push_back(int32_t(j)), sum_b += b[j];
  if (!(sum_a > 0) || !(sum_b > 0)) throw std::invalid_argument("emd::solve_sparse: masses must have positive totals");
  const int32_t na = int32_t(rows.size()), ma = int32_t(cols.size());
  const double scale = sum_a / sum_b;
  std::vector<double> supply(na), demand(ma), b_scaled(m);
  for (int32_t r = 0; r < na; ++r) supply[r] = a[rows[r]];
  for (int64_t j = 0; j < m; ++j) b_scaled[j] = b[j] * scale;
  for (int32_t l = 0; l < ma; ++l) demand[l] = b_scaled[cols[l]];

  TransportSimplex simplex(na, ma, supply.data(), demand.data());
  std::vector<int64_t> arc_of;  // simplex arc -> listed arc
  simplex.reserve(arcs.count);
  for (int64_t k = 0; k < arcs.count; ++k) {
    const int64_t i = arcs.rows[k], j = arcs.cols[k];
    if (i < 0 || i >= n || j < 0 || j >= m) throw std::invalid_argument("emd::solve_sparse: arc index out of range");
    if (!std::isfinite(arcs.costs[k])) throw std::invalid_argument("emd::solve_sparse: costs must be finite");
    if (row_pos[i] < 0 || col_pos[j] < 0) continue;  // a zero-mass end: never carries flow
    simplex.add_arc(row_pos[i], col_pos[j], arcs.costs[k]);
    arc_of.push_back(k);
  }
  Solution sol;
  // Without a limit, still the dense solver's hard one (1000 (n + m) + 1e5 pivots, far above a
  // normal solve), so that a stalling run of degenerate pivots ends in a checked answer, not a hang.
  const bool capped = options.max_iter < 0;
  const int64_t limit = capped ? 1000 * (int64_t(na) + ma) + 100000 : options.max_iter;
  sol.status = simplex.run(limit, sol.iterations);
  const double left = simplex.artificial_flow();
  if (sol.status == Status::Optimal && left > 1e-9 * sum_a) sol.status = Status::Infeasible;
  sol.arcs = simplex.real_arcs();

  std::vector<std::pair<int64_t, int64_t>> order;  // (listed arc, simplex arc) with positive flow
  std::vector<int64_t> basic;
  simplex.tree_real_arcs(basic);  // flow sits on tree arcs only
  for (const int64_t e : basic)
    if (simplex.arc_flow(e) > 0) order.push_back({arc_of[e], e});
  std::sort(order.begin(), order.end(), [&](const auto& x, const auto& y) {
    return std::make_pair(arcs.rows[x.first], arcs.cols[x.first]) < std::make_pair(arcs.rows[y.first], arcs.cols[y.first]);
  });
  double abs_cost = 0.0;
  for (const auto& [k, e] : order) {
    const double f = simplex.arc_flow(e), c = arcs.costs[k];
    sol.rows.push_back(arcs.rows[k]);
    sol.cols.push_back(arcs.cols[k]);
    sol.values.push_back(f);
    sol.cost += f * c;
    abs_cost += f * std::fabs(c);
  }

  // Duals from the potentials (levels resolved with the smallest feasible M, as in solve()).
  simplex.normalise_potentials();
  const double* pi = simplex.potentials();
  const int32_t* lv = simplex.levels();
  double m_eff = 0.0;
  for (int64_t e = 0; e < sol.arcs; ++e) {
    const int32_t r = simplex.arc_row(e), l = simplex.arc_col(e), dl = lv[r] - lv[na + l];
    if (dl > 0) m_eff = std::max(m_eff, -(simplex.arc_cost(e) + pi[r] - pi[na + l]) / dl);
  }
  const double inf = std::numeric_limits<double>::infinity();
  sol.u.assign(n, inf);
  sol.v.assign(m, inf);
  for (int32_t r = 0; r < na; ++r) sol.u[rows[r]] = -(pi[r] + lv[r] * m_eff);
  for (int32_t l = 0; l < ma; ++l) sol.v[cols[l]] = pi[na + l] + lv[na + l] * m_eff;
  // Zero-mass columns, then rows: c-transforms over their listed arcs (0 without any).
  for (int64_t k = 0; k < arcs.count; ++k) {
    const int64_t i = arcs.rows[k], j = arcs.cols[k];
    if (col_pos[j] < 0 && row_pos[i] >= 0) sol.v[j] = std::min(sol.v[j], arcs.costs[k] - sol.u[i]);
  }
  for (int64_t j = 0; j < m; ++j)
    if (col_pos[j] < 0 && sol.v[j] == inf) sol.v[j] = 0.0;
  for (int64_t k = 0; k < arcs.count; ++k) {
    const int64_t i = arcs.rows[k], j = arcs.cols[k];
    if (row_pos[i] < 0) sol.u[i] = std::min(sol.u[i], arcs.costs[k] - sol.v[j]);
  }
  for (int64_t i = 0; i < n; ++i)
    if (row_pos[i] < 0 && sol.u[i] == inf) sol.u[i] = 0.0;
  center_duals(n, m, a, b_scaled.data(), sum_a, sol.u, sol.v);

  // The certificate on the listed arcs (NOTE: [Certificate] in transport.cpp).
  constexpr double kCertTol = 1e-10, kPairTol = 1e-12;
  std::vector<double> row_sum(n, 0.0), col_sum(m, 0.0);
  for (size_t t = 0; t < sol.values.size(); ++t) row_sum[sol.rows[t]] += sol.values[t], col_sum[sol.cols[t]] += sol.values[t];
  double primal = 0.0, dual = 0.0, dual_obj = 0.0, dual_abs = 0.0;
  for (int64_t i = 0; i < n; ++i) primal = std::max(primal, std::fabs(row_sum[i] - a[i]));
  for (int64_t j = 0; j < m; ++j) primal = std::max(primal, std::fabs(col_sum[j] - b_scaled[j]));
  bool pairs_ok = true;
  for (int64_t k = 0; k < arcs.count; ++k) {
    const double ui = sol.u[arcs.rows[k]], vj = sol.v[arcs.cols[k]], c = arcs.costs[k];
    const double viol = ui + vj - c;
    dual = std::max(dual, viol);
    pairs_ok = pairs_ok && viol <= kPairTol * (std::fabs(ui) + std::fabs(vj) + std::fabs(c));
  }
  for (int64_t i = 0; i < n; ++i) dual_obj += a[i] * sol.u[i], dual_abs += a[i] * std::fabs(sol.u[i]);
  for (int64_t j = 0; j < m; ++j) dual_obj += b_scaled[j] * sol.v[j], dual_abs += b_scaled[j] * std::fabs(sol.v[j]);
  sol.primal_residual = primal;
  sol.dual_violation = dual;
  sol.duality_gap = std::fabs(sol.cost - dual_obj);
  const bool certified = primal <= kCertTol * sum_a && pairs_ok && sol.duality_gap <= kCertTol * (abs_cost + dual_abs);
  if (sol.status == Status::Optimal && !certified) sol.status = Status::Imprecise;
  // The stall guard above (not a limit the caller set): the certificate decides.
  if (sol.status == Status::IterationLimit && capped) sol.status = certified ? Status::Optimal : Status::Imprecise;
  return sol;
}

}  // namespace pygan::emd
