// NOTE: [Spatial hierarchy]
// The first arc set of a point-cloud problem, chosen coarse to fine. A random quarter of the
// points (multiscale.cpp) describes a translated or far-apart pair poorly: its duals are those of
// another problem. Cells of nearby points do not: each cloud is cut by a k-d tree (median cuts
// across the widest side) into cells of about four points, the cells' centroids carry the
// cells' masses, and that coarse problem (a quarter of the size each way, solved the same way,
// recursively) sends mass where the fine one does, translation included. Its plan's support is
// prolongated (each fine row gets the fine columns of every cell its cell sends mass to), and so
// are its duals (the fine arcs' ranking for the feasible fill), plus the few cells that are
// nearly tight under the coarse duals on either side, so that the first basis is close to the
// optimum's. On pixel grids the cells are exactly the 2x2 blocks of the multiscale scheme. The
// result stays exact either way: the pricing rounds over every pair still decide optimality.
#include "emd/hierarchy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>
#include <vector>

namespace pygan::emd {

namespace {

constexpr int32_t kCell = 4;       // points per coarse point
constexpr int32_t kTight = 4;      // coarse cells added per row and per column by reduced cost
constexpr int32_t kNear = 48;      // coarse cells per row cell that the local pricing looks at
constexpr int64_t kMinCells = 64;  // below this the coarse problem is not worth a level

// The cells of the points `ids` (indices into coords, d coordinates each): cell_of[t] for the
// t-th id, and the number of cells. Cuts at a multiple of kCell so that cells are full.
int32_t kd_cells(const double* coords, int64_t d, const std::vector<int32_t>& ids, std::vector<int32_t>& cell_of) {
  const int32_t count = int32_t(ids.size());
  std::vector<int32_t> perm(count);
  std::iota(perm.begin(), perm.end(), 0);
  cell_of.assign(count, -1);
  int32_t cells = 0;
  std::vector<std::pair<int32_t, int32_t>> stack{{0, count}};
  std::vector<double> lo(d), hi(d);
  while (!stack.empty()) {
    const auto [b, e] = stack.back();
    stack.pop_back();
    const int32_t size = e - b;
    if (size <= kCell) {
      for (int32_t t = b; t < e; ++t) cell_of[perm[t]] = cells;
      ++cells;
      continue;
    }
    std::fill(lo.begin(), lo.end(), std::numeric_limits<double>::infinity());
    std::fill(hi.begin(), hi.end(), -std::numeric_limits<double>::infinity());
    for (int32_t t = b; t < e; ++t) {
      const double* p = coords + int64_t(ids[perm[t]]) * d;
      for (int64_t k = 0; k < d; ++k) lo[k] = std::min(lo[k], p[k]), hi[k] = std::max(hi[k], p[k]);
    }
    int64_t w = 0;
    for (int64_t k = 1; k < d; ++k)
      if (hi[k] - lo[k] > hi[w] - lo[w]) w = k;
    const int32_t left = std::min(size - 1, kCell * ((size + 2 * kCell - 1) / (2 * kCell)));
    std::nth_element(perm.begin() + b, perm.begin() + b + left, perm.begin() + e, [&](int32_t s, int32_t t) {
      const double ps = coords[int64_t(ids[s]) * d + w], pt = coords[int64_t(ids[t]) * d + w];
      return ps < pt || (ps == pt && s < t);
    });
    stack.push_back({b + left, e});
    stack.push_back({b, b + left});
  }
  return cells;
}

// Mass-weighted centroids and total masses of the cells.
void cell_points(const double* coords, int64_t d, const std::vector<int32_t>& ids, const std::vector<double>& mass,
                 const std::vector<int32_t>& cell_of, int32_t cells, std::vector<double>& centre,
                 std::vector<double>& cell_mass) {
  centre.assign(size_t(cells) * d, 0.0);
  cell_mass.assign(cells, 0.0);
  for (size_t t = 0; t < ids.size(); ++t) cell_mass[cell_of[t]] += mass[t];
  for (size_t t = 0; t < ids.size(); ++t) {
    const double w = mass[t] / cell_mass[cell_of[t]];
    const double* p = coords + int64_t(ids[t]) * d;
    for (int64_t k = 0; k < d; ++k) centre[size_t(cell_of[t]) * d + k] += w * p[k];
  }
}

// For each of the `rows` points of `c` (against its `cols` points), its `count` columns of
// smallest reduced cost c - u - v, into best[row] (in increasing order of reduced cost).
void tightest(const Costs& c, int64_t rows, int64_t cols, const std::vector<double>& u, const std::vector<double>& v,
              int32_t count, const ParallelFor& parallel_for, std::vector<std::vector<int32_t>>& best) {
  const CostRows cost_rows(c, cols);
  const int32_t q = int32_t(std::min<int64_t>(count, cols));
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / cols);
  parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    std::vector<double> buffer(cols), key(q);
    std::vector<int32_t> idx(q);
    for (int64_t r = lo; r < hi; ++r) {
      const double* cr = cost_rows.row(r, buffer.data());
      SmallestK heap{key.data(), idx.data(), q};
      double threshold = std::numeric_limits<double>::infinity();
      for (int64_t l = 0; l < cols; ++l) {
        const double value = cr[l] - u[r] - v[l];
        if (value < threshold) heap.push(value, int32_t(l)), threshold = heap.threshold();
      }
      std::vector<std::pair<double, int32_t>> sorted(heap.size);
      for (int32_t t = 0; t < heap.size; ++t) sorted[t] = {key[t], idx[t]};
      std::sort(sorted.begin(), sorted.end());
      best[r].resize(heap.size);
      for (int32_t t = 0; t < heap.size; ++t) best[r][t] = sorted[t].second;
    }
  });
}

// An upper bound of the cost between any two of the points (the bounding box's diagonal), or
// +inf when it overflows.
double cost_bound(const Costs& costs, const Active& act) {
  const int64_t d = costs.dim;
  std::vector<double> lo(d, std::numeric_limits<double>::infinity()), hi(d, -std::numeric_limits<double>::infinity());
  auto extend = [&](const double* p) {
    for (int64_t k = 0; k < d; ++k) lo[k] = std::min(lo[k], p[k]), hi[k] = std::max(hi[k], p[k]);
  };
  for (const int32_t i : act.rows) extend(costs.x + int64_t(i) * d);
  for (const int32_t j : act.cols) extend(costs.y + int64_t(j) * d);
  double s = 0.0;
  for (int64_t k = 0; k < d; ++k) s = std::max(s, hi[k] - lo[k]);
  if (!(s > 0)) return 0.0;
  if (std::isinf(s)) return s;
  double t = 0.0;
  for (int64_t k = 0; k < d; ++k) t += ((hi[k] - lo[k]) / s) * ((hi[k] - lo[k]) / s);
  const double norm = s * std::sqrt(t);
  switch (costs.metric) {
    case Metric::SqEuclidean: return norm * norm;
    case Metric::Euclidean: return norm;
    case Metric::Power: return std::pow(norm, costs.p);
  }
  return norm;
}

}  // namespace

bool SpatialStart::build(const Costs& costs, const Active& act, const std::vector<double>& supply,
                         const std::vector<double>& demand, const Options& options, const ParallelFor& parallel_for,
                         std::vector<double>& row_dual, std::vector<double>& col_dual) {
  if (!costs.x || !costs.y || costs.matrix) return false;
  const int32_t na = int32_t(act.rows.size()), ma = int32_t(act.cols.size());
  const int64_t d = costs.dim;
  // Every cost is below the bound, so a finite bound replaces the pass that found max |cost|;
  // otherwise that pass runs (and refuses the costs that do overflow).
  const double bound = cost_bound(costs, act);
  if (!std::isfinite(bound)) return false;

  std::vector<int32_t> col_cell;
  const int32_t nc = kd_cells(costs.x, d, act.rows, row_cell);
  const int32_t mc = kd_cells(costs.y, d, act.cols, col_cell);
  if (nc < kMinCells || mc < kMinCells) return false;
  std::vector<double> row_centre, col_centre, row_mass, col_mass;
  cell_points(costs.x, d, act.rows, supply, row_cell, nc, row_centre, row_mass);
  cell_points(costs.y, d, act.cols, demand, col_cell, mc, col_centre, col_mass);

  Costs coarse = costs;
  coarse.x = row_centre.data();
  coarse.y = col_centre.data();
  Options coarse_options = options;
  coarse_options.max_iter = -1;
  coarse_options.init_u = coarse_options.init_v = nullptr;
  const Solution sol = solve(nc, mc, row_mass.data(), col_mass.data(), coarse, coarse_options);
  for (const double x : sol.u)
    if (!std::isfinite(x)) return false;
  for (const double x : sol.v)
    if (!std::isfinite(x)) return false;

  // The coarse cells each coarse row is linked to: its plan's support, its own tightest columns
  // and the columns that have it among their tightest rows.
  std::vector<std::vector<int32_t>> linked(nc), near(nc), col_best(mc);
  tightest(coarse, nc, mc, sol.u, sol.v, kNear, parallel_for, near);
  for (int32_t r = 0; r < nc; ++r) linked[r].assign(near[r].begin(), near[r].begin() + std::min<size_t>(kTight, near[r].size()));
  Costs transposed = coarse;
  std::swap(transposed.x, transposed.y);
  tightest(transposed, mc, nc, sol.v, sol.u, kTight, parallel_for, col_best);
  for (int32_t l = 0; l < mc; ++l)
    for (const int32_t r : col_best[l]) linked[r].push_back(l);
  for (size_t t = 0; t < sol.rows.size(); ++t) linked[sol.rows[t]].push_back(int32_t(sol.cols[t]));
  for (int32_t r = 0; r < nc; ++r) {
    auto& cells = linked[r];
    std::sort(cells.begin(), cells.end());
    cells.erase(std::unique(cells.begin(), cells.end()), cells.end());
    near[r].insert(near[r].end(), cells.begin(), cells.end());
    std::sort(near[r].begin(), near[r].end());
    near[r].erase(std::unique(near[r].begin(), near[r].end()), near[r].end());
  }

  // Prolongation: fine row r gets every fine column of the cells its cell is linked to.
  std::vector<int32_t> col_start(mc + 1, 0), col_members(ma);
  for (int32_t l = 0; l < ma; ++l) ++col_start[col_cell[l] + 1];
  for (int32_t c = 0; c < mc; ++c) col_start[c + 1] += col_start[c];
  {
    std::vector<int32_t> fill(col_start.begin(), col_start.end() - 1);
    for (int32_t l = 0; l < ma; ++l) col_members[fill[col_cell[l]]++] = l;
  }
  per_row.assign(na, {});
  for (int32_t r = 0; r < na; ++r) {
    auto& cols = per_row[r];
    for (const int32_t c : linked[row_cell[r]]) cols.insert(cols.end(), col_members.begin() + col_start[c], col_members.begin() + col_start[c + 1]);
  }

  near_start.assign(nc + 1, 0);
  near_cols.clear();
  for (int32_t r = 0; r < nc; ++r) {
    for (const int32_t c : near[r]) near_cols.insert(near_cols.end(), col_members.begin() + col_start[c], col_members.begin() + col_start[c + 1]);
    near_start[r + 1] = int32_t(near_cols.size());
  }

  // Duals: the coarse column duals, then c-transforms over the prolongated arcs (rows, then
  // columns), so every row and every column has a tight arc to start the fill from.
  const CostRows cost_rows(costs, 0);
  row_dual.assign(na, 0.0);
  col_dual.assign(ma, 0.0);
  for (int32_t l = 0; l < ma; ++l) col_dual[l] = sol.v[col_cell[l]];
  std::vector<double> best_col(ma, std::numeric_limits<double>::infinity());
  const int64_t grain = std::max<int64_t>(1, 1024);
  std::mutex merge;
  parallel_for(0, na, grain, [&](int64_t lo, int64_t hi) {
    std::vector<double> mine(ma, std::numeric_limits<double>::infinity());
    std::vector<double> c;
    for (int64_t r = lo; r < hi; ++r) {
      const auto& cols = per_row[r];
      c.resize(cols.size());
      double u = std::numeric_limits<double>::infinity();
      for (size_t t = 0; t < cols.size(); ++t) {
        c[t] = cost_rows.at(act.rows[r], act.cols[cols[t]]);
        u = std::min(u, c[t] - col_dual[cols[t]]);
      }
      row_dual[r] = std::isfinite(u) ? u : 0.0;
      for (size_t t = 0; t < cols.size(); ++t) mine[cols[t]] = std::min(mine[cols[t]], c[t] - row_dual[r]);
    }
    std::lock_guard<std::mutex> guard(merge);
    for (int32_t l = 0; l < ma; ++l) best_col[l] = std::min(best_col[l], mine[l]);
  });
  for (int32_t l = 0; l < ma; ++l)
    if (std::isfinite(best_col[l])) col_dual[l] = best_col[l];
  bounded.build(costs, act);
  costs_ = costs;
  col_xy_.resize(size_t(d) * ma);
  for (int32_t l = 0; l < ma; ++l)
    for (int64_t k = 0; k < d; ++k) col_xy_[size_t(k) * ma + l] = costs.y[int64_t(act.cols[l]) * d + k];
  max_abs = bound;
  return true;
}

template <Metric kMetric>
void SpatialStart::price_local(const TransportSimplex& simplex, const std::vector<double>& shift_r,
                               const CostRows& cost_rows, const Active& act, int64_t add_per_row,
                               const ParallelFor& parallel_for) {
  const int32_t na = int32_t(act.rows.size()), ma = int32_t(act.cols.size());
  const int64_t d = costs_.dim;
  const double p = costs_.p;
  const double* pi = simplex.potentials();
  const int32_t* lv = simplex.levels();
  const double* cxy = col_xy_.data();
  const double* cpi = col_pi_.data();
  const int32_t* clv = col_lv_.data();
  const int32_t* near = near_cols.data();
  parallel_for(0, na, std::max<int64_t>(1, 256), [&](int64_t lo, int64_t hi) {
    std::vector<double> score;
    for (int64_t r = lo; r < hi; ++r) {
      const int32_t cell = row_cell[r];
      const int32_t t0 = near_start[cell], t1 = near_start[cell + 1];
      const double pr = pi[r] - shift_r[r];
      const int32_t lr = lv[r];
      const double* x = costs_.x + int64_t(act.rows[r]) * d;
      score.resize(size_t(t1 - t0));
      double* sc = score.data();
      // Gathered by column index: a unit-stride loop over the neighbourhood list.
      const double lowest = score_pairs<kMetric>(
          x, d, p, cxy, ma, cpi, clv, pr, lr, t0, t1, [near](int32_t t) { return near[t]; },
          [&](int32_t t) { return cost_rows.at(act.rows[r], act.cols[near[t]]); }, sc);
      SmallestK worst{key_.data() + r * add_per_row, idx_.data() + r * add_per_row, int32_t(add_per_row)};
      if (lowest < 0)
        for (int32_t t = t0; t < t1; ++t)
          if (sc[t - t0] < 0) worst.push(sc[t - t0], near[t]);
      size_[r] = worst.size;
    }
  });
}

int64_t SpatialStart::round(const TransportSimplex& simplex, const std::vector<double>& shift_r,
                            const std::vector<double>& shift_c, const CostRows& cost_rows, const Active& act,
                            int64_t add_per_row, const ParallelFor& parallel_for,
                            const std::function<void(int32_t, int32_t, double)>& add_arc) {
  ++local_rounds;
  const int32_t na = int32_t(act.rows.size()), ma = int32_t(act.cols.size());
  const double* pi = simplex.potentials();
  const int32_t* lv = simplex.levels();
  col_pi_.resize(ma);
  col_lv_.resize(ma);
  for (int32_t l = 0; l < ma; ++l) col_pi_[l] = pi[na + l] + shift_c[l], col_lv_[l] = lv[na + l];
  key_.resize(size_t(na) * add_per_row);
  idx_.resize(key_.size());
  size_.assign(na, 0);
  switch (costs_.metric) {
    case Metric::SqEuclidean: price_local<Metric::SqEuclidean>(simplex, shift_r, cost_rows, act, add_per_row, parallel_for); break;
    case Metric::Euclidean: price_local<Metric::Euclidean>(simplex, shift_r, cost_rows, act, add_per_row, parallel_for); break;
    case Metric::Power: price_local<Metric::Power>(simplex, shift_r, cost_rows, act, add_per_row, parallel_for); break;
  }
  return add_chosen_arcs(idx_, size_, add_per_row, cost_rows, act, add_arc);
}

}  // namespace pygan::emd
