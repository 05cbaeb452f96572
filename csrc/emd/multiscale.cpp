// NOTE: [Multiscale start] (see transport.cpp): the sub-sampled coarse solve whose duals choose
// the first arcs of a large problem.
#include <algorithm>
#include <limits>
#include <mutex>
#include <random>
#include <vector>

#include "emd/internal.h"

namespace pygan::emd {

Subsample solve_subsample(int64_t m, const Costs& costs, const Active& act, const std::vector<double>& supply,
                          const std::vector<double>& demand, const Options& options) {
  const int32_t na = int32_t(act.rows.size()), ma = int32_t(act.cols.size());
  std::mt19937_64 rng(0x5eed + na + 31 * ma);
  Subsample out;
  std::vector<int32_t>& rs = out.rows;
  std::vector<int32_t>& cs = out.cols;
  rs.resize(na);
  cs.resize(ma);
  for (int32_t r = 0; r < na; ++r) rs[r] = r;
  for (int32_t l = 0; l < ma; ++l) cs[l] = l;
  std::shuffle(rs.begin(), rs.end(), rng);
  std::shuffle(cs.begin(), cs.end(), rng);
  rs.resize(std::max<int32_t>(na / 4, std::min<int32_t>(na, 64)));
  cs.resize(std::max<int32_t>(ma / 4, std::min<int32_t>(ma, 64)));
  std::sort(rs.begin(), rs.end());
  std::sort(cs.begin(), cs.end());
  const int64_t ns = rs.size(), ms = cs.size();
  std::vector<double> sa(ns), sb(ms), sub_matrix, sx, sy;
  for (int64_t t = 0; t < ns; ++t) sa[t] = supply[rs[t]];
  for (int64_t t = 0; t < ms; ++t) sb[t] = demand[cs[t]];
  Costs sub = costs;
  if (costs.matrix) {
    sub_matrix.resize(size_t(ns) * ms);
    for (int64_t t = 0; t < ns; ++t)
      for (int64_t q = 0; q < ms; ++q)
        sub_matrix[t * ms + q] = costs.matrix[int64_t(act.rows[rs[t]]) * m + act.cols[cs[q]]];
    sub.matrix = sub_matrix.data();
  } else {
    const int64_t d = costs.dim;
    sx.resize(size_t(ns) * d);
    sy.resize(size_t(ms) * d);
    for (int64_t t = 0; t < ns; ++t) std::copy_n(costs.x + act.rows[rs[t]] * d, d, sx.data() + t * d);
    for (int64_t q = 0; q < ms; ++q) std::copy_n(costs.y + act.cols[cs[q]] * d, d, sy.data() + q * d);
    sub.x = sx.data();
    sub.y = sy.data();
  }
  Options sub_options = options;
  sub_options.max_iter = -1;
  sub_options.init_u = sub_options.init_v = nullptr;
  out.sol = solve(ns, ms, sa.data(), sb.data(), sub, sub_options);
  return out;
}

void subsampled_column_duals(int64_t m, const Costs& costs, const CostRows& cost_rows,
                             const Active& act, const std::vector<double>& supply,
                             const std::vector<double>& demand, const Options& options,
                             const ParallelFor& parallel_for, int64_t grain, std::vector<double>& col_dual,
                             const Subsample* solved) {
  const int32_t ma = int32_t(act.cols.size());
  std::mutex merge_mutex;
  Subsample own;
  if (!solved) own = solve_subsample(m, costs, act, supply, demand, options), solved = &own;
  const std::vector<int32_t>& rs = solved->rows;
  const Solution& coarse_sol = solved->sol;
  const int64_t ns = rs.size();
  std::fill(col_dual.begin(), col_dual.end(), std::numeric_limits<double>::infinity());
  parallel_for(0, ns, grain, [&](int64_t lo, int64_t hi) {
    std::vector<double> buffer(costs.matrix ? 0 : m), best(ma, std::numeric_limits<double>::infinity());
    for (int64_t t = lo; t < hi; ++t) {
      const double* c = cost_rows.row(act.rows[rs[t]], buffer.data());
      const double u = coarse_sol.u[t];
      for (int32_t l = 0; l < ma; ++l) best[l] = std::min(best[l], c[act.cols[l]] - u);
    }
    std::lock_guard<std::mutex> guard(merge_mutex);
    for (int32_t l = 0; l < ma; ++l) col_dual[l] = std::min(col_dual[l], best[l]);
  });
}

}  // namespace pygan::emd
