// NOTE: [Assignment start]
// With n == m and every a_i equal and every b_j equal (the uniform square case: small problems
// and batches of them in practice), the transport polytope's vertices are the permutation
// matrices scaled by the common mass, so an optimal assignment is an optimal plan, and the
// assignment's duals (u_i + v_j <= C_ij, tight on the assignment) are optimal duals of the
// transport problem. A dense shortest-augmenting-path solver finds them in about n^2 work per
// augmenting path with no degenerate steps, where the network simplex from the big-M tree spends
// ~5 pivots per node, most of them degenerate (n - 1 of the 2n - 1 basic arcs of an assignment
// carry no flow). Start: Jonker-Volgenant's column reduction (v_j = min_i C_ij, each column's
// cheapest row assigned when it is still free), then one augmenting path per free row by
// Crouse's dense Dijkstra (as scipy's linear_sum_assignment). Workspace is per thread and reused,
// so a batch of small problems allocates only its results.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "emd/duals.h"
#include "emd/internal.h"

namespace pygan::emd {
namespace {

struct Workspace {
  std::vector<double> cost, u, v, shortest;
  std::vector<int32_t> path, col4row, row4col, remaining, visited_rows;
  std::vector<uint8_t> row_seen, col_seen;
  void resize(int64_t n, bool copy_costs) {
    if (copy_costs) cost.resize(size_t(n) * n);
    u.assign(n, 0.0);
    v.resize(n);
    shortest.resize(n);
    path.resize(n);
    col4row.assign(n, -1);
    row4col.assign(n, -1);
    remaining.resize(n);
    visited_rows.clear();
    visited_rows.reserve(n);
    row_seen.assign(n, 0);
    col_seen.assign(n, 0);
  }
};

// One augmenting path from the free row `start` to a free column (Crouse 2016, section 3):
// Dijkstra over the columns on reduced costs C_ij - u_i - v_j >= 0, then the dual update that
// keeps every reduced cost non-negative and the path tight, then the swap along the path.
// Returns false when no finite path exists (cannot happen with finite costs).
bool augment(int64_t n, const double* C, int32_t start, Workspace& w) {
  double* u = w.u.data();
  double* v = w.v.data();
  double* shortest = w.shortest.data();
  int32_t* remaining = w.remaining.data();
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) shortest[j] = inf, remaining[j] = int32_t(n - 1 - j);
  w.visited_rows.clear();
  int64_t left = n;
  double min_val = 0.0;
  int32_t i = start, sink = -1;
  while (sink < 0) {
    w.row_seen[i] = 1;
    w.visited_rows.push_back(i);
    const double* ci = C + size_t(i) * n;
    const double base = min_val - u[i];
    int64_t index = -1;
    double lowest = inf;
    for (int64_t t = 0; t < left; ++t) {
      const int32_t j = remaining[t];
      const double r = base + ci[j] - v[j];
      if (r < shortest[j]) w.path[j] = i, shortest[j] = r;
      // Among equally short columns prefer a free one: the path ends there.
      if (shortest[j] < lowest || (shortest[j] == lowest && w.row4col[j] < 0)) lowest = shortest[j], index = t;
    }
    if (!(lowest < inf)) return false;
    min_val = lowest;
    const int32_t j = remaining[index];
    w.col_seen[j] = 1;
    if (w.row4col[j] < 0) sink = j;
    else i = w.row4col[j];
    remaining[index] = remaining[--left];
  }
  // Duals: the start row by min_val, every other visited row and every reached column by how much
  // shorter than min_val its path was, so the tree's arcs stay tight.
  u[start] += min_val;
  for (const int32_t r : w.visited_rows) {
    if (r != start) u[r] += min_val - shortest[w.col4row[r]];
    w.row_seen[r] = 0;
  }
  for (int64_t j = 0; j < n; ++j) {
    if (!w.col_seen[j]) continue;
    v[j] -= min_val - shortest[j];
    w.col_seen[j] = 0;
  }
  for (int32_t j = sink;;) {
    const int32_t r = w.path[j];
    w.row4col[j] = r;
    std::swap(w.col4row[r], j);
    if (r == start) break;
  }
  return true;
}

// Jonker-Volgenant's augmenting row reduction (two passes): a free row takes its cheapest column
// under the current v, lowering that column's v to its second-cheapest reduced cost (so the row's
// choice stays tight and every other reduced cost only grows) and evicting the column's row, which
// is retried. Cheap (one row scan per step, at most n steps per pass) and it leaves few free rows for augment(). At the end
// u_i = min_j C_ij - v_j for every row: u_i + v_j <= C_ij everywhere, tight on the assignment.
void reduce_rows(int64_t n, const double* C, Workspace& w) {
  double* v = w.v.data();
  std::vector<int32_t>& free = w.visited_rows;  // scratch here
  const double inf = std::numeric_limits<double>::infinity();
  for (int pass = 0; pass < 2; ++pass) {
    free.clear();
    for (int64_t i = 0; i < n; ++i)
      if (w.col4row[i] < 0) free.push_back(int32_t(i));
    size_t k = 0;
    int64_t steps = 0;
    const size_t count = free.size();
    while (k < count && steps++ < n) {
      const int32_t i = free[k++];
      const double* ci = C + size_t(i) * n;
      double u1 = inf, u2 = inf;
      int32_t j1 = -1, j2 = -1;
      for (int64_t j = 0; j < n; ++j) {
        const double h = ci[j] - v[j];
        if (h < u2) {
          if (h < u1) u2 = u1, j2 = j1, u1 = h, j1 = int32_t(j);
          else u2 = h, j2 = int32_t(j);
        }
      }
      if (j1 < 0) return;
      int32_t i0 = w.row4col[j1];
      if (u1 < u2) {
        if (u2 < inf) v[j1] -= u2 - u1;
      } else if (i0 >= 0 && j2 >= 0) {
        j1 = j2;
        i0 = w.row4col[j1];
      }
      if (i0 >= 0) w.col4row[i0] = -1;
      w.col4row[i] = j1;
      w.row4col[j1] = i;
      // An evicted row is retried at once when its column's v strictly dropped (JV), otherwise in
      // the next pass; at most n steps per pass, so ties cannot make this loop long.
      if (i0 >= 0 && u1 < u2) free[--k] = i0;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const double* ci = C + size_t(i) * n;
    double best = inf;
    for (int64_t j = 0; j < n; ++j) best = std::min(best, ci[j] - v[j]);
    w.u[i] = best;
  }
}

}  // namespace

bool is_uniform_square(int64_t n, int64_t m, const double* a, const double* b) {
  if (n != m || !(a[0] > 0) || !(b[0] > 0)) return false;
  for (int64_t i = 1; i < n; ++i)
    if (a[i] != a[0] || b[i] != b[0]) return false;
  return true;
}

bool solve_assignment(int64_t n, const double* a, const double* b_scaled, double sum_a,
                      const CostRows& cost_rows, bool matrix, const ParallelFor& parallel_for,
                      int64_t grain, Solution& sol) {
  thread_local Workspace w;
  w.resize(n, !matrix);
  const double* C = nullptr;
  if (matrix) {
    C = cost_rows.row(0, nullptr);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const double* row = cost_rows.row(i, w.cost.data() + size_t(i) * n);
      if (row != w.cost.data() + size_t(i) * n) std::copy_n(row, n, w.cost.data() + size_t(i) * n);
    }
    C = w.cost.data();
  }
  // Column reduction: v_j = min_i C_ij (so every reduced cost is >= 0 with u = 0) and column j
  // takes its cheapest row if that row is still free (then the pair is tight). Columns in reverse
  // order, as Jonker and Volgenant do, so low-index columns win ties the same way each time.
  const double inf = std::numeric_limits<double>::infinity();
  std::fill(w.v.begin(), w.v.end(), inf);
  std::fill(w.path.begin(), w.path.end(), 0);  // here: each column's cheapest row
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    const double* ci = C + size_t(i) * n;
    for (int64_t j = 0; j < n; ++j) {
      finite = finite && std::isfinite(ci[j]);
      if (ci[j] < w.v[j]) w.v[j] = ci[j], w.path[j] = int32_t(i);
    }
  }
  if (!finite) return false;  // the network simplex path reports it
  for (int64_t j = n - 1; j >= 0; --j) {
    const int32_t r = w.path[j];
    if (w.col4row[r] < 0) w.col4row[r] = int32_t(j), w.row4col[j] = r;
  }
  reduce_rows(n, C, w);
  int64_t paths = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (w.col4row[i] >= 0) continue;
    if (!augment(n, C, int32_t(i), w)) return false;
    ++paths;
  }

  sol = Solution{};
  sol.status = Status::Optimal;
  sol.iterations = paths;
  sol.rows.resize(n);
  sol.cols.resize(n);
  sol.values.resize(n);
  double abs_cost = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t j = w.col4row[i];
    const double c = C[size_t(i) * n + j];
    sol.rows[i] = i;
    sol.cols[i] = j;
    sol.values[i] = a[i];
    sol.cost += a[i] * c;
    abs_cost += a[i] * std::fabs(c);
  }
  sol.arcs = n * n;
  sol.u.assign(w.u.begin(), w.u.end());
  sol.v.assign(w.v.begin(), w.v.end());
  center_duals(n, n, a, b_scaled, sum_a, sol.u, sol.v);
  return certify(n, n, a, b_scaled, sum_a, abs_cost, cost_rows, matrix, parallel_for, grain, sol);
}

}  // namespace pygan::emd
