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
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "emd/duals.h"
#include "emd/internal.h"

namespace pygan::emd {
namespace {

struct Workspace {
  std::vector<double> cost, u, v, shortest, open;
  std::vector<int64_t> path;  // int64: the same width as a double, for the vector scan
  std::vector<int32_t> col4row, row4col, visited_rows, visited_cols, free_cols;
  void resize(int64_t n, bool copy_costs) {
    if (copy_costs) cost.resize(size_t(n) * n);
    u.assign(n, 0.0);
    v.resize(n);
    shortest.resize(n);
    path.resize(n);
    col4row.assign(n, -1);
    row4col.assign(n, -1);
    open.resize(n);
    visited_rows.clear();
    visited_rows.reserve(n);
    visited_cols.clear();
    visited_cols.reserve(n);
  }
};

// One row's step of the Dijkstra: open[j] = min(open[j], base + C_ij - v_j) with path[j] = i
// where that lowered it, for every column; returns the smallest open distance (+inf: none) and
// in `arg` a column that has it. A closed column holds NaN in `open`, which no comparison
// selects, so the loop runs over all n columns unit-stride and branch-free (vector registers
// where the build has them: measured ~2x faster than a scan over a list of the open columns).
double scan_row(int64_t n, const double* ci, const double* v, double base, double* open, int64_t* path,
                int64_t i, int64_t& arg) {
  const double inf = std::numeric_limits<double>::infinity();
  double lowest = inf;
  arg = -1;
  int64_t j = 0;
#if defined(__AVX512F__)
  {
    const __m512d vbase = _mm512_set1_pd(base);
    const __m512i vi = _mm512_set1_epi64(i), step = _mm512_set1_epi64(8);
    __m512d vlow = _mm512_set1_pd(inf);
    __m512i vidx = _mm512_set1_epi64(-1), vj = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    for (; j + 8 <= n; j += 8) {
      const __m512d r = _mm512_sub_pd(_mm512_add_pd(vbase, _mm512_loadu_pd(ci + j)), _mm512_loadu_pd(v + j));
      const __m512d d = _mm512_loadu_pd(open + j);
      const __mmask8 better = _mm512_cmp_pd_mask(r, d, _CMP_LT_OQ);
      const __m512d e = _mm512_mask_blend_pd(better, d, r);
      _mm512_storeu_pd(open + j, e);
      _mm512_mask_storeu_epi64(path + j, better, vi);
      const __mmask8 low = _mm512_cmp_pd_mask(e, vlow, _CMP_LT_OQ);
      vlow = _mm512_mask_blend_pd(low, vlow, e);
      vidx = _mm512_mask_blend_epi64(low, vidx, vj);
      vj = _mm512_add_epi64(vj, step);
    }
    alignas(64) double lanes[8];
    alignas(64) int64_t idx[8];
    _mm512_store_pd(lanes, vlow);
    _mm512_store_si512(reinterpret_cast<__m512i*>(idx), vidx);
    for (int k = 0; k < 8; ++k)
      if (lanes[k] < lowest) lowest = lanes[k], arg = idx[k];
  }
#elif defined(__AVX2__)
  {
    const __m256d vbase = _mm256_set1_pd(base);
    const __m256i vi = _mm256_set1_epi64x(i), step = _mm256_set1_epi64x(4);
    __m256d vlow = _mm256_set1_pd(inf);
    __m256i vidx = _mm256_set1_epi64x(-1), vj = _mm256_setr_epi64x(0, 1, 2, 3);
    for (; j + 4 <= n; j += 4) {
      const __m256d r = _mm256_sub_pd(_mm256_add_pd(vbase, _mm256_loadu_pd(ci + j)), _mm256_loadu_pd(v + j));
      const __m256d d = _mm256_loadu_pd(open + j);
      const __m256d better = _mm256_cmp_pd(r, d, _CMP_LT_OQ);
      const __m256d e = _mm256_blendv_pd(d, r, better);
      _mm256_storeu_pd(open + j, e);
      _mm256_maskstore_epi64(reinterpret_cast<long long*>(path + j), _mm256_castpd_si256(better), vi);
      const __m256d low = _mm256_cmp_pd(e, vlow, _CMP_LT_OQ);
      vlow = _mm256_blendv_pd(vlow, e, low);
      vidx = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(vidx), _mm256_castsi256_pd(vj), low));
      vj = _mm256_add_epi64(vj, step);
    }
    alignas(32) double lanes[4];
    alignas(32) int64_t idx[4];
    _mm256_store_pd(lanes, vlow);
    _mm256_store_si256(reinterpret_cast<__m256i*>(idx), vidx);
    for (int k = 0; k < 4; ++k)
      if (lanes[k] < lowest) lowest = lanes[k], arg = idx[k];
  }
#endif
  for (; j < n; ++j) {
    const double r = base + ci[j] - v[j];
    const double d = open[j];
    const bool better = r < d;
    const double e = better ? r : d;
    open[j] = e;
    path[j] = better ? i : path[j];
    if (e < lowest) lowest = e, arg = j;
  }
  return lowest;
}

// One augmenting path from the free row `start` to a free column (Crouse 2016, section 3):
// Dijkstra over the columns on reduced costs C_ij - u_i - v_j >= 0, then the dual update that
// keeps every reduced cost non-negative and the path tight, then the swap along the path.
// Returns false when no finite path exists (cannot happen with finite costs).
bool augment(int64_t n, const double* C, int32_t start, Workspace& w) {
  double* u = w.u.data();
  double* v = w.v.data();
  double* shortest = w.shortest.data();
  double* open = w.open.data();
  int64_t* path = w.path.data();
  const int32_t* row4col = w.row4col.data();
  const double inf = std::numeric_limits<double>::infinity();
  std::fill_n(open, n, inf);
  w.visited_rows.clear();
  w.visited_cols.clear();
  double min_val = 0.0;
  int32_t i = start, sink = -1;
  while (sink < 0) {
    w.visited_rows.push_back(i);
    int64_t arg;
    const double lowest = scan_row(n, C + size_t(i) * n, v, min_val - u[i], open, path, i, arg);
    if (!(lowest < inf)) return false;
    int32_t j = int32_t(arg);
    if (row4col[j] >= 0) {
      // Among equally short columns prefer a free one: the path ends there (many ties: integer
      // costs, repeated points; and the augmenting row reduction leaves most rows two tight
      // columns, so this is the common case). The free columns are few (one per free row left):
      // look through their list rather than all n.
      for (const int32_t f : w.free_cols)
        if (open[f] == lowest) { j = f; break; }
    }
    min_val = lowest;
    shortest[j] = lowest;
    open[j] = std::numeric_limits<double>::quiet_NaN();  // closed
    w.visited_cols.push_back(j);
    if (row4col[j] < 0) sink = j;
    else i = row4col[j];
  }
  // The sink is matched from now on.
  auto& free = w.free_cols;
  free.erase(std::find(free.begin(), free.end(), sink));
  // Duals: the start row by min_val, every other visited row and every reached column by how much
  // shorter than min_val its path was, so the tree's arcs stay tight.
  u[start] += min_val;
  for (const int32_t r : w.visited_rows)
    if (r != start) u[r] += min_val - shortest[w.col4row[r]];
  for (const int32_t j : w.visited_cols) v[j] -= min_val - shortest[j];
  for (int32_t j = sink;;) {
    const int32_t r = int32_t(path[j]);
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
      if (ci[j] < w.v[j]) w.v[j] = ci[j], w.path[j] = i;
    }
  }
  if (!finite) return false;  // the network simplex path reports it
  for (int64_t j = n - 1; j >= 0; --j) {
    const int32_t r = int32_t(w.path[j]);
    if (w.col4row[r] < 0) w.col4row[r] = int32_t(j), w.row4col[j] = r;
  }
  reduce_rows(n, C, w);
  w.free_cols.clear();
  for (int64_t j = 0; j < n; ++j)
    if (w.row4col[j] < 0) w.free_cols.push_back(int32_t(j));
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
