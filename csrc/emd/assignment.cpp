// NOTE: [Assignment start]
// With n == m and every a_i equal and every b_j equal (the uniform square case: small problems
// and batches of them in practice), the transport polytope's vertices are the permutation
// matrices scaled by the common mass, so an optimal assignment is an optimal plan, and the
// assignment's duals (u_i + v_j <= C_ij, tight on the assignment) are optimal duals of the
// transport problem. A dense shortest-augmenting-path solver finds them in about n^2 work per
// augmenting path with no degenerate steps, where the network simplex from the big-M tree spends
// ~5 pivots per node, most of them degenerate (n - 1 of the 2n - 1 basic arcs of an assignment
// carry no flow). Start: Jonker-Volgenant's column reduction (v_j = min_i C_ij, each column's
// cheapest row assigned when it is still free) and one pass of their augmenting row reduction
// (at most n / 2 steps), then one augmenting path per row still free by Crouse's dense Dijkstra
// (as scipy's linear_sum_assignment). Every pass over a row (column reduction, the row
// reduction's smallest and second-smallest reduced cost, the Dijkstra step) is branch-free in
// vector registers, lanes merged without branches. Workspace is per thread and reused, so a
// batch of small problems allocates only its results.
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
  std::vector<double> cost, u, v, shortest, open, free_inf;
  std::vector<int64_t> path;  // int64: the same width as a double, for the vector scan
  std::vector<int32_t> col4row, row4col, closed, free_rows;
  int64_t steps = 0;  // Dijkstra steps (row scans) of augment(), over all paths
  void resize(int64_t n, bool copy_costs) {  // no allocation once a problem this size was solved
    steps = 0;
    if (copy_costs) cost.resize(size_t(n) * n);
    u.assign(n, 0.0);
    v.resize(n);
    shortest.resize(n);
    path.resize(n);
    col4row.assign(n, -1);
    row4col.assign(n, -1);
    open.resize(n);
    free_inf.resize(n);
    closed.resize(n);
    free_rows.clear();
    free_rows.reserve(n);
  }
};

constexpr double kInf = std::numeric_limits<double>::infinity();

#if defined(__AVX512F__)
// The smallest value of `val` and the smallest index among the lanes holding it (lanes hold
// increasing indices, so that is the first column a left-to-right scan would find). Branch-free:
// a scalar merge of the lanes was ~40% of a 64-column scan.
inline double lowest_lane(__m512d val, __m512i idx, int64_t& arg) {
  const double low = _mm512_reduce_min_pd(val);
  arg = _mm512_mask_reduce_min_epi64(_mm512_cmp_pd_mask(val, _mm512_set1_pd(low), _CMP_EQ_OQ), idx);
  return low;
}
#endif

// One row's step of the Dijkstra: open[j] = min(open[j], base + C_ij - v_j) with path[j] = i
// where that lowered it, for every column; returns the smallest open distance (+inf: none) and
// in `arg` the first column that has it, and in `free_low` / `free_arg` the same over the free
// columns only (free_inf[j]: 0 for a free column, +inf for a matched one, added to the distance).
// A closed column holds NaN in `open`, which no comparison selects, so the loop runs over all n
// columns unit-stride and branch-free (vector registers where the build has them: measured ~2x
// faster than a scan over a list of the open columns).
double scan_row(int64_t n, const double* ci, const double* v, const double* free_inf, double base, double* open,
                int64_t* path, int64_t i, int64_t& arg, double& free_low, int64_t& free_arg) {
  double lowest = kInf;
  arg = -1, free_low = kInf, free_arg = -1;
  int64_t j = 0;
#if defined(__AVX512F__)
  if (n >= 8) {
    const __m512d vbase = _mm512_set1_pd(base);
    const __m512i vi = _mm512_set1_epi64(i), step = _mm512_set1_epi64(8);
    __m512d vlow = _mm512_set1_pd(kInf), vfree = vlow;
    __m512i vidx = _mm512_set1_epi64(-1), vfidx = vidx, vj = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
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
      const __m512d f = _mm512_add_pd(e, _mm512_loadu_pd(free_inf + j));
      const __mmask8 flow = _mm512_cmp_pd_mask(f, vfree, _CMP_LT_OQ);
      vfree = _mm512_mask_blend_pd(flow, vfree, f);
      vfidx = _mm512_mask_blend_epi64(flow, vfidx, vj);
      vj = _mm512_add_epi64(vj, step);
    }
    lowest = lowest_lane(vlow, vidx, arg);
    free_low = lowest_lane(vfree, vfidx, free_arg);
  }
#elif defined(__AVX2__)
  {
    const __m256d vbase = _mm256_set1_pd(base);
    const __m256i vi = _mm256_set1_epi64x(i), step = _mm256_set1_epi64x(4);
    __m256d vlow = _mm256_set1_pd(kInf), vfree = vlow;
    __m256i vidx = _mm256_set1_epi64x(-1), vfidx = vidx, vj = _mm256_setr_epi64x(0, 1, 2, 3);
    for (; j + 4 <= n; j += 4) {
      const __m256d r = _mm256_sub_pd(_mm256_add_pd(vbase, _mm256_loadu_pd(ci + j)), _mm256_loadu_pd(v + j));
      const __m256d d = _mm256_loadu_pd(open + j);
      const __m256d better = _mm256_cmp_pd(r, d, _CMP_LT_OQ);
      const __m256d e = _mm256_blendv_pd(d, r, better);
      _mm256_storeu_pd(open + j, e);
      // path[j] = better ? i : path[j] as a load, a blend and a plain store, not vpmaskmovq: on AMD
      // Zen 3 the masked store made the same uniform 256 x 256 solve take anywhere from 3.6 to 10 ms
      // depending on where the thread's workspace landed; the blend takes 2.9-4 ms everywhere.
      const __m256d pj = _mm256_loadu_pd(reinterpret_cast<const double*>(path + j));
      _mm256_storeu_pd(reinterpret_cast<double*>(path + j), _mm256_blendv_pd(pj, _mm256_castsi256_pd(vi), better));
      const __m256d low = _mm256_cmp_pd(e, vlow, _CMP_LT_OQ);
      vlow = _mm256_blendv_pd(vlow, e, low);
      vidx = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(vidx), _mm256_castsi256_pd(vj), low));
      const __m256d f = _mm256_add_pd(e, _mm256_loadu_pd(free_inf + j));
      const __m256d flow = _mm256_cmp_pd(f, vfree, _CMP_LT_OQ);
      vfree = _mm256_blendv_pd(vfree, f, flow);
      vfidx = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(vfidx), _mm256_castsi256_pd(vj), flow));
      vj = _mm256_add_epi64(vj, step);
    }
    alignas(32) double lanes[4], flanes[4];
    alignas(32) int64_t idx[4], fidx[4];
    _mm256_store_pd(lanes, vlow);
    _mm256_store_pd(flanes, vfree);
    _mm256_store_si256(reinterpret_cast<__m256i*>(idx), vidx);
    _mm256_store_si256(reinterpret_cast<__m256i*>(fidx), vfidx);
    for (int k = 0; k < 4; ++k) {  // lane k holds columns k mod 4: break ties by column
      if (lanes[k] < lowest || (lanes[k] == lowest && idx[k] < arg)) lowest = lanes[k], arg = idx[k];
      if (flanes[k] < free_low || (flanes[k] == free_low && fidx[k] < free_arg))
        free_low = flanes[k], free_arg = fidx[k];
    }
  }
#endif
  for (; j < n; ++j) {  // the tail: columns after every vector lane's, so strict < keeps the first
    const double r = base + ci[j] - v[j];
    const double d = open[j];
    const bool better = r < d;
    const double e = better ? r : d;
    open[j] = e;
    path[j] = better ? i : path[j];
    if (e < lowest) lowest = e, arg = j;
    const double f = e + free_inf[j];
    if (f < free_low) free_low = f, free_arg = j;
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
  double* free_inf = w.free_inf.data();
  int64_t* path = w.path.data();
  int32_t* row4col = w.row4col.data();
  int32_t* col4row = w.col4row.data();
  int32_t* closed = w.closed.data();  // the columns closed on this path, in order (raw: no push_back)
  std::fill_n(open, n, kInf);
  int64_t count = 0;
  double min_val = 0.0;
  int32_t i = start, sink = -1;
  while (sink < 0) {
    ++w.steps;
    int64_t arg, free_arg;
    double free_low;
    const double lowest =
        scan_row(n, C + size_t(i) * n, v, free_inf, min_val - u[i], open, path, i, arg, free_low, free_arg);
    if (!(lowest < kInf)) return false;
    // Among equally short columns prefer a free one: the path ends there (many ties: integer
    // costs, repeated points; and the augmenting row reduction leaves its rows two tight columns).
    const int32_t j = int32_t(free_low == lowest ? free_arg : arg);
    min_val = lowest;
    shortest[j] = lowest;
    open[j] = std::numeric_limits<double>::quiet_NaN();  // closed
    if (row4col[j] < 0) sink = j;
    else closed[count++] = j, i = row4col[j];
  }
  free_inf[sink] = kInf;  // matched from now on
  // Duals: the start row by min_val, every other visited row (the row of a closed matched
  // column) and every closed column by how much shorter than min_val its path was, so the tree's
  // arcs stay tight.
  u[start] += min_val;
  for (int64_t k = 0; k < count; ++k) {
    const int32_t j = closed[k];
    const double slack = min_val - shortest[j];
    u[row4col[j]] += slack;
    v[j] -= slack;
  }
  for (int32_t j = sink;;) {
    const int32_t r = int32_t(path[j]);
    row4col[j] = r;
    std::swap(col4row[r], j);
    if (r == start) break;
  }
  return true;
}

// The smallest and second-smallest reduced cost h_j = c_j - v_j of a row, with the first column
// having each (j1 != j2; u2 == u1 on a tie; u2 = +inf, j2 = -1 when n == 1). Branch-free in vector
// registers, each lane keeping its own two smallest, merged at the end; the scalar scan with its
// two data-dependent branches was ~5x slower.
struct Top2 {
  double u1 = kInf, u2 = kInf;
  int32_t j1 = -1, j2 = -1;
  void offer(double h, int64_t j) {  // in increasing j
    if (h < u1) u2 = u1, j2 = j1, u1 = h, j1 = int32_t(j);
    else if (h < u2) u2 = h, j2 = int32_t(j);
  }
};

Top2 top2(int64_t n, const double* c, const double* v) {
  Top2 t;
  int64_t j = 0;
#if defined(__AVX512F__)
  if (n >= 8) {
    __m512d U1 = _mm512_set1_pd(kInf), U2 = U1;
    __m512i J1 = _mm512_set1_epi64(-1), J2 = J1, vj = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i step = _mm512_set1_epi64(8);
    for (; j + 8 <= n; j += 8) {
      const __m512d h = _mm512_sub_pd(_mm512_loadu_pd(c + j), _mm512_loadu_pd(v + j));
      const __mmask8 lt1 = _mm512_cmp_pd_mask(h, U1, _CMP_LT_OQ), lt2 = _mm512_cmp_pd_mask(h, U2, _CMP_LT_OQ);
      U2 = _mm512_mask_blend_pd(lt1, _mm512_mask_blend_pd(lt2, U2, h), U1);
      J2 = _mm512_mask_blend_epi64(lt1, _mm512_mask_blend_epi64(lt2, J2, vj), J1);
      U1 = _mm512_mask_blend_pd(lt1, U1, h);
      J1 = _mm512_mask_blend_epi64(lt1, J1, vj);
      vj = _mm512_add_epi64(vj, step);
    }
    // Lane l holds the columns l mod 8. The smallest: over the lanes' smallest; the second: over
    // the other lanes' smallest and the second of the smallest's lane.
    int64_t j1, j2;
    t.u1 = lowest_lane(U1, J1, j1);
    const __mmask8 own = __mmask8(1u << (j1 & 7));
    t.u2 = lowest_lane(_mm512_mask_blend_pd(own, U1, U2), _mm512_mask_blend_epi64(own, J1, J2), j2);
    t.j1 = int32_t(j1), t.j2 = t.u2 < kInf ? int32_t(j2) : -1;
  }
#elif defined(__AVX2__)
  if (n >= 4) {
    __m256d U1 = _mm256_set1_pd(kInf), U2 = U1;
    __m256i J1 = _mm256_set1_epi64x(-1), J2 = J1, vj = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i step = _mm256_set1_epi64x(4);
    for (; j + 4 <= n; j += 4) {
      const __m256d h = _mm256_sub_pd(_mm256_loadu_pd(c + j), _mm256_loadu_pd(v + j));
      const __m256d lt1 = _mm256_cmp_pd(h, U1, _CMP_LT_OQ), lt2 = _mm256_cmp_pd(h, U2, _CMP_LT_OQ);
      const __m256d pj = _mm256_castsi256_pd(vj), pj1 = _mm256_castsi256_pd(J1);
      U2 = _mm256_blendv_pd(_mm256_blendv_pd(U2, h, lt2), U1, lt1);
      J2 = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_blendv_pd(_mm256_castsi256_pd(J2), pj, lt2), pj1, lt1));
      U1 = _mm256_blendv_pd(U1, h, lt1);
      J1 = _mm256_castpd_si256(_mm256_blendv_pd(pj1, pj, lt1));
      vj = _mm256_add_epi64(vj, step);
    }
    alignas(32) double u1[4], u2[4];
    alignas(32) int64_t j1[4], j2[4];
    _mm256_store_pd(u1, U1);
    _mm256_store_pd(u2, U2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(j1), J1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(j2), J2);
    // The lanes' candidates in (value, column) order: the first column wins ties.
    auto take = [&t](double h, int64_t jj) {
      if (jj < 0) return;
      if (h < t.u1 || (h == t.u1 && jj < t.j1)) t.u2 = t.u1, t.j2 = t.j1, t.u1 = h, t.j1 = int32_t(jj);
      else if (h < t.u2 || (h == t.u2 && jj < t.j2)) t.u2 = h, t.j2 = int32_t(jj);
    };
    for (int k = 0; k < 4; ++k) take(u1[k], j1[k]), take(u2[k], j2[k]);
  }
#endif
  for (; j < n; ++j) t.offer(c[j] - v[j], j);  // the tail: columns after every lane's
  return t;
}

// Jonker-Volgenant's augmenting row reduction, one pass over at most max(1, n / 2) steps: a free
// row takes its cheapest column under the current v, lowering that column's v to its
// second-cheapest reduced cost (so the row's choice stays tight and every other reduced cost only
// grows) and evicting the column's row, which is retried at once when the drop was strict and
// otherwise left to augment(). A step costs one row scan, as one Dijkstra step does, and can save
// a whole augmenting path (~20 scans at 64 x 64) while free rows are many. Measured on 64 x 64 and
// 256 x 256 uniform clouds, anything from no pass to two passes of n steps took the same time
// within about 10 % (three: slower): the later steps mostly shuffle evicted rows and cost about
// what the paths they save would. At the end u_i = min_j C_ij - v_j for every row: u_i + v_j <= C_ij
// everywhere, tight on the assignment.
void reduce_rows(int64_t n, const double* C, Workspace& w) {
  double* v = w.v.data();
  std::vector<int32_t>& free = w.free_rows;
  const double inf = std::numeric_limits<double>::infinity();
  free.clear();
  for (int64_t i = 0; i < n; ++i)
    if (w.col4row[i] < 0) free.push_back(int32_t(i));
  size_t k = 0;
  const int64_t max_steps = std::max<int64_t>(1, n / 2);
  int64_t steps = 0;
  const size_t count = free.size();
  while (k < count && steps++ < max_steps) {
    const int32_t i = free[k++];
    const Top2 t = top2(n, C + size_t(i) * n, v);
    if (t.j1 < 0) break;
    int32_t j1 = t.j1;
    int32_t i0 = w.row4col[j1];
    if (t.u1 < t.u2) {
      if (t.u2 < inf) v[j1] -= t.u2 - t.u1;
    } else if (i0 >= 0 && t.j2 >= 0) {
      j1 = t.j2;
      i0 = w.row4col[j1];
    }
    if (i0 >= 0) w.col4row[i0] = -1;
    w.col4row[i] = j1;
    w.row4col[j1] = i;
    if (i0 >= 0 && t.u1 < t.u2) free[--k] = i0;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double* ci = C + size_t(i) * n;
    double best = inf;
#pragma omp simd reduction(min : best)
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
  double* v = w.v.data();
  int64_t* low_row = w.path.data();  // here: each column's cheapest row
  std::fill_n(v, n, inf);
  std::fill_n(low_row, n, int64_t(0));
  // Branch-free (vectorised); a non-finite cost (exponent all ones) is caught in the same pass.
  constexpr uint64_t kExponent = 0x7ff0000000000000ULL;
  uint64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* ci = C + size_t(i) * n;
    const uint64_t* bits = reinterpret_cast<const uint64_t*>(ci);
#pragma omp simd reduction(| : bad)
    for (int64_t j = 0; j < n; ++j) {
      bad |= uint64_t((bits[j] & kExponent) == kExponent);
      const bool lower = ci[j] < v[j];
      v[j] = lower ? ci[j] : v[j];
      low_row[j] = lower ? i : low_row[j];
    }
  }
  if (bad) return false;  // the network simplex path reports it
  for (int64_t j = n - 1; j >= 0; --j) {
    const int32_t r = int32_t(low_row[j]);
    if (w.col4row[r] < 0) w.col4row[r] = int32_t(j), w.row4col[j] = r;
  }
  reduce_rows(n, C, w);
  for (int64_t j = 0; j < n; ++j) w.free_inf[j] = w.row4col[j] < 0 ? 0.0 : kInf;
  int64_t paths = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (w.col4row[i] >= 0) continue;
    if (!augment(n, C, int32_t(i), w)) return false;
    ++paths;
  }

  sol = Solution{};
  sol.status = Status::Optimal;
  sol.iterations = paths;
  sol.scans = w.steps;
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
