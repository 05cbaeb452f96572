// pygan::emd::solve: restricted network simplex + full pricing rounds (see emd.h and docs/ot.md).
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>
#ifdef PYGAN_EMD_TRACE
#include <cstdio>
#endif
#include <stdexcept>
#include <string>
#if defined(_MSC_VER)
#include <intrin.h>
#endif

#include "emd/emd.h"
#include "emd/hierarchy.h"
#include "emd/internal.h"
#include "emd/network_simplex.h"
#include "emd/select.h"

namespace pygan::emd {

const char* status_name(Status s) {
  switch (s) {
    case Status::Optimal: return "optimal";
    case Status::Infeasible: return "infeasible";
    case Status::Unbounded: return "unbounded";
    case Status::IterationLimit: return "iteration_limit";
    case Status::Imprecise: return "imprecise";
  }
  return "unknown";
}

ParallelFor serial_for() {
  return [](int64_t begin, int64_t end, int64_t, const std::function<void(int64_t, int64_t)>& body) {
    if (begin < end) body(begin, end);
  };
}

namespace {

// NOTE: [Assignment probe]
// Uniform square problems up to kAssignmentAlways go to the assignment solver; from there to
// kAssignmentMax it depends on the geometry, which a probe measures; above, to the network
// simplex. The assignment solver's augmenting paths grow longer with n, by how much depends on the
// costs: at 512 (assignment / simplex, ms, 1 thread) uniform points in the unit square with
// squared Euclidean costs take 4.1 / 11.1, minibatch-OT-like clouds in 16 dimensions 7.5 / 16.9,
// two 2-D Gaussian clouds shifted by (1, 0) 19.6 / 17.4, shifted by (4, 0) 28.9 / 16.8, rank-one
// costs x_i y_j 38.6 / 27.8; at 1024: 26.3 / 43.7, 62.5 / 44.8, 147 / 43, 296 / 79, 404 / 125. The
// probe is the multiscale start's own first step (NOTE: [Multiscale start]): the problem on a
// random quarter of the rows and columns, itself a uniform square problem at most 256 wide, solved
// by the assignment solver. Its Dijkstra steps per row predict the full problem's (the full one
// takes ~2-5x as many per row): 84 problems (7 geometries above and at d = 128, n = 384, 512, 768,
// 1024, 3 seeds each): below 24 steps per quarter row the assignment solver was faster in 37 of
// 39 (the 2 others within 1.3x), at 24 and above the simplex in 41 of 45 (the others within 1.7x,
// the worst a simplex time 2x its seed-mates': noise); the 84 solves took 2415 ms so chosen, 2676
// with the former rule (assignment up to 512), 2731 always on the simplex, 2338 with hindsight.
// The probe costs the quarter's solve: 2-8% of the assignment's time when that is chosen (a
// quarter of 384 unit-square points took 0.13 ms beside the full 1.65 ms, of 1000 0.5 beside 24);
// nothing when the simplex is and its matrix start reuses the quarter, the quarter's solve when its
// start does not (point clouds take the spatial start; the multiscale option off takes none).
constexpr int64_t kAssignmentAlways = 256;
constexpr int64_t kAssignmentMax = 1024;
constexpr int64_t kProbeStepsPerRow = 24;

// The index of x's lowest set bit (x != 0).
inline int lowest_set_bit(uint64_t x) {
#if defined(_MSC_VER)
  unsigned long at;
  _BitScanForward64(&at, x);
  return int(at);
#else
  return __builtin_ctzll(x);
#endif
}

// NOTE: [Greedy prefix] in select.h: the greedy fill's sorted prefix, in units of n + m arcs.
constexpr size_t kGreedyPrefix = 4;

// NOTE: [Adaptive neighbours]
// How many first arcs a row needs depends on the shape of its reduced costs under the coarse
// duals. With squared Euclidean costs they grow about linearly with their rank (a bowl: the
// number of columns below t grows like the area of a disc of radius sqrt(t)), and each row's 32
// best hold the arcs an optimal plan uses: more only cost time (DOTmark 32 x 32: 0.19 -> 0.26 s at
// k = 128, the same pivots). With Euclidean costs along a translation a whole cone of pairs is
// nearly tight and the keys grow like the square of the rank (the cone's width grows like the
// square root of t): a row's 32 best are a thin slice of the cone, the first simplex run
// optimises over the wrong arcs and every round adds ~30 arcs per row and ~30K pivots
// (3000 x 2000 shifted (4, 2): 200K pivots in 9 rounds at k = 32, 78K in 6 at k = 128, 2x
// faster; 1000 x 1500 shifted (4, 2): 59K -> 18K pivots). So the growth is measured on a fixed
// sample of rows before the selection pass: the ratio of the keys at ranks ~4q and ~q (q the
// 2k-th smallest, from a sorted random sample of 4k keys, as the selection's own estimate) is
// ~4 for a bowl and ~16 for a cone; its median over the sampled rows picks k.
constexpr int32_t kGrowthRows = 256;
constexpr double kConeGrowth = 6.5;    // between a bowl (4, rank^1) and a cone (16, rank^2)
constexpr int64_t kConeNeighbours = 128;
constexpr int64_t kGrowthMinPairs = int64_t(1) << 19;

// The median over up to kGrowthRows rows (a fixed random sample) of key(4q) / key(q) as above;
// 0 when it cannot be measured (too few columns, or keys that vanish: ties).
double key_growth(int64_t m, int64_t k, const CostRows& cost_rows, bool matrix, const Active& act,
                  const std::vector<double>& col_dual) {
  const int32_t na = int32_t(act.rows.size()), ma = int32_t(act.cols.size());
  const int32_t sample = int32_t(std::min<int64_t>(4 * k, ma));
  const int32_t rank = int32_t((2 * k * int64_t(sample) + ma - 1) / ma);  // ~2k-th of all ma
  if (rank < 1 || 4 * rank > sample) return 0.0;
  std::mt19937 rng(0x9e3779b9u);
  std::vector<int32_t> cols(ma);
  for (int32_t l = 0; l < ma; ++l) cols[l] = l;
  std::shuffle(cols.begin(), cols.end(), rng);
  cols.resize(sample);
  std::vector<double> buffer(matrix ? 0 : m), keys(sample), ratios;
  std::uniform_int_distribution<int32_t> pick(0, na - 1);
  for (int32_t t = 0; t < std::min(na, kGrowthRows); ++t) {
    const int32_t r = na <= kGrowthRows ? t : pick(rng);
    const double* c = cost_rows.row(act.rows[r], buffer.data());
    double u = std::numeric_limits<double>::infinity();
    for (int32_t l = 0; l < ma; ++l) u = std::min(u, c[act.cols[l]] - col_dual[l]);
    for (int32_t q = 0; q < sample; ++q) keys[q] = c[act.cols[cols[q]]] - u - col_dual[cols[q]];
    std::sort(keys.begin(), keys.end());
    const double low = keys[rank - 1], high = keys[4 * rank - 1];
    if (low > 0 && std::isfinite(high)) ratios.push_back(high / low);
  }
  if (ratios.size() * 2 < size_t(std::min(na, kGrowthRows))) return 0.0;
  std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
  return ratios[ratios.size() / 2];
}


}  // namespace

Solution solve(int64_t n, int64_t m, const double* a, const double* b, const Costs& costs,
               const Options& options) {
  if (n <= 0 || m <= 0) throw std::invalid_argument("emd::solve: n and m must be positive");
  if (n + m >= std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("emd::solve: n + m must fit in 32 bits");
  if (!costs.matrix && !(costs.x && costs.y && costs.dim > 0))
    throw std::invalid_argument("emd::solve: give either a cost matrix or two point sets");
  const ParallelFor parallel_for = options.parallel_for ? options.parallel_for : serial_for();
  // Rows per task in the passes over all pairs: at least ~64K pairs, so that small problems run
  // on one thread (a pass over a few thousand pairs is shorter than waking a second thread).
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / m);
  const CostRows cost_rows(costs, m);
  std::mutex merge_mutex;

  // Zero-mass rows and columns take no part in the network (a strongly feasible start tree needs
  // positive masses); their duals come from c-transforms at the end.
  Active act;
  double sum_a = 0.0, sum_b = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (a[i] > 0) act.rows.push_back(static_cast<int32_t>(i)), sum_a += a[i];
  act.col_pos.assign(m, -1);
  for (int64_t j = 0; j < m; ++j)
    if (b[j] > 0) act.col_pos[j] = static_cast<int32_t>(act.cols.size()), act.cols.push_back(static_cast<int32_t>(j)), sum_b += b[j];
  if (!(sum_a > 0) || !(sum_b > 0)) throw std::invalid_argument("emd::solve: masses must have positive totals");
  const int32_t na = static_cast<int32_t>(act.rows.size()), ma = static_cast<int32_t>(act.cols.size());
  const double scale = sum_a / sum_b;  // b is brought to a's total: the residue is a few ulps
  std::vector<double> supply(na), demand(ma), b_scaled(m);
  for (int32_t r = 0; r < na; ++r) supply[r] = a[act.rows[r]];
  for (int64_t j = 0; j < m; ++j) b_scaled[j] = b[j] * scale;
  for (int32_t c = 0; c < ma; ++c) demand[c] = b_scaled[act.cols[c]];

  // The choice of strategy (measurements in docs/ot.md, "Performance"):
  // - uniform square, up to kAssignmentAlways, or up to kAssignmentMax when the probe on a quarter
  //   of the problem says so (NOTE: [Assignment probe]): the assignment solver (NOTE: [Assignment
  //   start]), its certificate checked; should it fail (costs spanning many orders of magnitude),
  //   the network simplex below solves the problem instead. Not with an iteration limit or a warm
  //   start, which are the simplex's own options.
  const bool warm = options.init_u != nullptr && options.init_v != nullptr;
  Subsample probe;  // the quarter's solve, when the probe ran (probe.sol.u empty otherwise)
  if (options.max_iter < 0 && !warm && na == n && ma == m && n <= kAssignmentMax && is_uniform_square(n, m, a, b)) {
    bool assign = n <= kAssignmentAlways;
    if (!assign) {
      probe = solve_subsample(m, costs, act, supply, demand, options);
      const int64_t steps = probe.sol.scans;  // -1: the quarter's assignment failed its certificate
      assign = steps >= 0 && steps < kProbeStepsPerRow * int64_t(probe.rows.size());
    }
    Solution sol;
    if (assign && solve_assignment(n, a, b_scaled.data(), sum_a, cost_rows, costs.matrix != nullptr, parallel_for,
                                   grain, sol))
      return sol;
  }

  // First arc set. Small problems: every arc. Otherwise each row's k best columns and each
  // column's k best rows, "best" by reduced cost under approximate duals (below), found in one
  // pass over the costs that also finds the largest |cost|.
  int64_t k = options.neighbours > 0 ? options.neighbours : 32;
  const bool complete = int64_t(na) * ma <= 128 * 128 || ma <= 2 * k || na <= 2 * k;
  k = std::min<int64_t>({k, na, ma});

  // NOTE: [Multiscale start]
  // Nearest neighbours by cost alone miss the optimal plan whenever mass must travel (two clouds
  // apart), and every missing arc costs a pricing round and many pivots. So first solve the
  // problem on a random quarter of the rows and of the columns (recursively, the same way), extend
  // its duals to every row and column by c-transforms (v_j = min_i C_ij - u_i over the sampled
  // rows, then u_i = min_j C_ij - v_j), and choose each row's and column's arcs by the reduced
  // cost C_ij - u_i - v_j under those duals: the tight arcs of a good dual are where an optimal
  // plan lives. The result stays exact either way; this only decides where the search starts.
  std::vector<double> row_dual(na, 0.0), col_dual(ma, 0.0);
  const bool coarse = !complete && (warm || options.multiscale);
  if (coarse && warm) {
    // A warm start: the given column duals play the coarse solve's part (its rows' duals follow
    // by the c-transform below, as they do there).
    for (int32_t l = 0; l < ma; ++l) col_dual[l] = options.init_v[act.cols[l]];
  }
  // Point clouds: the spatial coarse-to-fine start instead (NOTE: [Spatial hierarchy] in
  // hierarchy.cpp), which also gives the first arcs themselves; the matrix path's otherwise.
  SpatialStart spatial_start;
  const bool spatial = coarse && !warm && costs.x != nullptr &&
                       spatial_start.build(costs, act, supply, demand, options, parallel_for, row_dual, col_dual);
  if (coarse && !warm && !spatial) {
    subsampled_column_duals(m, costs, cost_rows, act, supply, demand, options, parallel_for, grain, col_dual,
                            probe.sol.u.empty() ? nullptr : &probe);
  }

  // NOTE: [Adaptive neighbours]: a wide cone of nearly tight pairs needs more first arcs.
  // (Not on small problems: 128 arcs a row did not help there, and the probe would be a
  // noticeable part of their single pass.)
  if (!complete && !spatial && coarse && options.neighbours <= 0 && int64_t(na) * ma >= kGrowthMinPairs &&
      key_growth(m, k, cost_rows, costs.matrix != nullptr, act, col_dual) >= kConeGrowth)
    k = std::min<int64_t>({kConeNeighbours, na, ma});

  const bool all_cols = ma == m;
  // Each row's k best columns (row_idx), kept by buffered selection (NOTE: [Buffered selection]
  // in select.h), and each column's k best rows (col_idx, NOTE: [Column selection] in
  // column_select.cpp).
  // (Not for the spatial start, which chose the first arcs itself.)
  const bool select = !complete && !spatial;
  std::vector<int32_t> row_idx(select ? size_t(na) * k : 0), col_idx(select ? size_t(ma) * k : 0);
  // row_order and col_order are fixed random permutations: the first entries of col_order are the
  // sample for the rows' threshold estimates, those of row_order the columns'.
  std::vector<int32_t> row_order(select ? na : 0), col_order(select ? ma : 0);
  if (select) {
    std::mt19937 shuffle_rng(0x5e1ec7);
    for (int32_t r = 0; r < na; ++r) row_order[r] = r;
    for (int32_t l = 0; l < ma; ++l) col_order[l] = l;
    std::shuffle(row_order.begin(), row_order.end(), shuffle_rng);
    std::shuffle(col_order.begin(), col_order.end(), shuffle_rng);
  }
  double max_abs = spatial ? spatial_start.max_abs : 0.0;
  if (!spatial) parallel_for(0, na, grain, [&](int64_t lo, int64_t hi) {
    std::vector<double> buffer(costs.matrix ? 0 : m), gathered(all_cols ? 0 : ma);
    std::vector<KeyIndex> row_slot(complete ? 0 : 2 * k);
    std::vector<double> key(complete ? 0 : ma);
    // The sample for the rows' threshold estimates: 4k keys; its rank-q key has expected rank
    // ~2k among all ma (no estimate when that would be the whole sample).
    const int32_t sample = int32_t(std::min<int64_t>(4 * k, ma));
    const int32_t sample_rank = complete ? 0 : int32_t((2 * k * int64_t(sample) + ma - 1) / ma);
    std::vector<double> sampled(sample_rank > 0 && sample_rank < sample ? sample : 0);
    double local_max = 0.0;
    for (int64_t r = lo; r < hi; ++r) {
      const double* c = cost_rows.row(act.rows[r], buffer.data());
      if (!all_cols) {  // gather the active columns' costs: the loops below then run unit-stride
        for (int32_t l = 0; l < ma; ++l) gathered[l] = c[act.cols[l]];
        c = gathered.data();
      }
      // (Explicit reductions: the compiler does not vectorise a max or min of doubles by itself.)
      double row_max = 0.0;
#pragma omp simd reduction(max : row_max)
      for (int32_t l = 0; l < ma; ++l) row_max = std::max(row_max, std::fabs(c[l]));
      local_max = std::max(local_max, row_max);
      if (complete) continue;
      double u = 0.0;
      if (coarse) {
        u = std::numeric_limits<double>::infinity();
        const double* cd = col_dual.data();
#pragma omp simd reduction(min : u)
        for (int32_t l = 0; l < ma; ++l) u = std::min(u, c[l] - cd[l]);
        row_dual[r] = u;
      }
      for (int32_t l = 0; l < ma; ++l) key[l] = c[l] - u - col_dual[l];
      // The row's own k: a threshold estimated from a fixed random sample of its keys (about the
      // 2k-th smallest), then one pass in column order that appends only keys below it; redone
      // without the estimate in the rare case that fewer than k fell below.
      double estimate = std::numeric_limits<double>::infinity();
      if (!sampled.empty()) {
        for (int32_t t = 0; t < sample; ++t) sampled[t] = key[col_order[t]];
        std::nth_element(sampled.begin(), sampled.begin() + (sample_rank - 1), sampled.end());
        estimate = sampled[sample_rank - 1];
      }
      KBuffer mine{row_slot.data(), int32_t(k)};
      mine.threshold = estimate;
      for (int32_t l = 0; l < ma; ++l) mine.push(key[l], l);
      mine.cut();
      if (mine.size < k) {
        mine = KBuffer{row_slot.data(), int32_t(k)};
        for (int32_t l = 0; l < ma; ++l) mine.push(key[l], l);
        mine.cut();
      }
      for (int32_t t = 0; t < k; ++t) row_idx[size_t(r) * k + t] = row_slot[t].idx;
    }
    std::lock_guard<std::mutex> guard(merge_mutex);
    max_abs = std::max(max_abs, local_max);
  });
  if (!std::isfinite(max_abs)) throw std::invalid_argument("emd::solve: costs must be finite");
  if (select) select_columns(m, k, costs, cost_rows, act, row_dual, row_order, parallel_for, col_idx);

  // The artificial arcs' big-M is symbolic (NOTE: [Symbolic big-M] in network_simplex.h), so no
  // cost scale enters here.
  TransportSimplex simplex(na, ma, supply.data(), demand.data());
  // NOTE: [Warm start]
  // With duals (u, v) of a nearby problem the simplex works on the reduced costs
  // C'_ij = C_ij - u_i - v_j instead (every plan's cost changes by the same a.u + b.v, so the
  // optimal plans are the same). The arcs of the old optimum then cost about 0 and all others more,
  // so the big-M start's first pivots, which take the cheapest arc of a block, build a tree close to
  // the new optimum. Potentials are translated back for pricing and for the duals returned.
  // Duals far off the cost scale are not used (their shift would only add rounding).
  std::vector<double> shift_r(na, 0.0), shift_c(ma, 0.0);
  bool shifted = false;
  if (warm) {
    double largest = 0.0;
    for (int32_t r = 0; r < na; ++r) largest = std::max(largest, std::fabs(options.init_u[act.rows[r]]));
    for (int32_t l = 0; l < ma; ++l) largest = std::max(largest, std::fabs(options.init_v[act.cols[l]]));
    shifted = largest <= 1e3 * (max_abs + 1.0);
    if (shifted) {
      for (int32_t r = 0; r < na; ++r) shift_r[r] = options.init_u[act.rows[r]];
      for (int32_t l = 0; l < ma; ++l) shift_c[l] = options.init_v[act.cols[l]];
    }
  }
  auto add_arc = [&](int32_t r, int32_t l, double c) {
    simplex.add_arc(r, l, shifted ? c - shift_r[r] - shift_c[l] : c);
  };
  if (complete) {
    // Every pair, row by row (NOTE: [Complete pricing] in network_simplex.h); the costs' largest
    // magnitude (after the warm start's shift) decides whether the vectorised search may run.
    double* arc_cost = simplex.add_complete_arcs();
    std::vector<double> buffer(costs.matrix ? 0 : m);
    double arc_max = 0.0;
    for (int32_t r = 0; r < na; ++r) {
      const double* c = cost_rows.row(act.rows[r], buffer.data());
      double* out = arc_cost + int64_t(r) * ma;
      if (all_cols) std::copy_n(c, ma, out);
      else for (int32_t l = 0; l < ma; ++l) out[l] = c[act.cols[l]];
      if (shifted) {
        const double sr = shift_r[r];
        for (int32_t l = 0; l < ma; ++l) out[l] = out[l] - sr - shift_c[l];
      }
      double row_max = 0.0;
#pragma omp simd reduction(max : row_max)
      for (int32_t l = 0; l < ma; ++l) row_max = std::max(row_max, std::fabs(out[l]));
      arc_max = std::max(arc_max, row_max);
    }
    if (options.feasible_start) {  // NOTE: [Complete start] (complete_start.cpp)
      std::vector<int64_t> basis;
      complete_start_basis(na, ma, simplex.real_costs(), supply, demand, 1e-12 * sum_a, basis);
      if (!basis.empty()) simplex.start_from_forest(basis);
    }
    simplex.use_complete_pricing(arc_max);
  } else {
    // Each row's columns, flat (row r's at [start[r], start[r + 1])): its own k, then those of the
    // columns that chose it; sorted and deduplicated per row.
    // (The spatial start's arcs per row instead, when it chose them.)
    std::vector<int64_t> start(size_t(na) + 1, 0);
    std::vector<int32_t> flat;
    if (spatial) {
      for (int32_t r = 0; r < na; ++r) start[r + 1] = start[r] + int64_t(spatial_start.per_row[r].size());
      flat.resize(static_cast<size_t>(start[na]));
      for (int32_t r = 0; r < na; ++r)
        std::copy(spatial_start.per_row[r].begin(), spatial_start.per_row[r].end(), flat.begin() + start[r]);
      std::vector<std::vector<int32_t>>().swap(spatial_start.per_row);
    } else {
      for (const int32_t r : col_idx) ++start[size_t(r) + 1];
      for (int32_t r = 0; r < na; ++r) start[r + 1] += start[r] + k;
      flat.resize(static_cast<size_t>(start[na]));
      std::vector<int32_t> fill_at(na);
      for (int32_t r = 0; r < na; ++r) {
        std::copy_n(row_idx.begin() + size_t(r) * k, k, flat.begin() + start[r]);
        fill_at[r] = int32_t(k);
      }
      for (int32_t l = 0; l < ma; ++l)
        for (int32_t t = 0; t < k; ++t) {
          const int32_t r = col_idx[size_t(l) * k + t];
          flat[size_t(start[r] + fill_at[r]++)] = l;
        }
    }
    // The arcs in row order (the simplex's block pricing walks them so); `greedy` orders them by
    // reduced cost for the fill below. Each row's columns are sorted and deduplicated, then the
    // arcs' costs and keys filled, on the threads (rows are independent), straight into the
    // simplex's arrays (no staged copy: 3000 x 2000, 408K arcs, 23 -> 14 ms on 1 thread).
    const int64_t per_row = std::max<int64_t>(1, int64_t(flat.size()) / na);
    const int64_t build_grain = std::max<int64_t>(1, (int64_t(1) << 14) / per_row);
    std::vector<int64_t> kept(size_t(na) + 1, 0);  // row r's arcs: [kept[r], kept[r + 1])
    // Sorted and deduplicated through a bitmap of the columns (set the row's bits, then read them
    // back in order, clearing as it goes): what std::sort and std::unique gave, in O(arcs + m / 64)
    // a row (1 thread: 1000 x 1500, 225K arcs, 8 ms -> 0.7 ms; 3000 x 2000, 408K, 17-19 -> 1.5).
    parallel_for(0, na, build_grain, [&](int64_t lo, int64_t hi) {
      std::vector<uint64_t> bits((size_t(ma) + 63) / 64, 0);
      for (int64_t r = lo; r < hi; ++r) {
        int32_t* const first = flat.data() + start[r];
        for (const int32_t* c = first; c != flat.data() + start[r + 1]; ++c) bits[*c >> 6] |= uint64_t{1} << (*c & 63);
        int32_t* out = first;
        for (size_t w = 0; w < bits.size(); ++w) {
          for (uint64_t x = bits[w]; x != 0; x &= x - 1) *out++ = int32_t(w * 64 + lowest_set_bit(x));
          bits[w] = 0;
        }
        kept[r + 1] = out - first;
      }
    });
    for (int32_t r = 0; r < na; ++r) kept[r + 1] += kept[r];
    const size_t arcs = size_t(kept[na]);
    std::vector<KeyIndex> greedy(arcs);
    // Room for the north-west corner's arcs too (below), so `fresh` stays valid.
    simplex.reserve(int64_t(arcs) + na + ma);
    const TransportSimplex::NewArcs fresh = simplex.append_arcs(int64_t(arcs));
    parallel_for(0, na, build_grain, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const int32_t* cols = flat.data() + start[r];
        const double* c = costs.matrix ? costs.matrix + int64_t(act.rows[r]) * m : nullptr;
        for (int64_t e = kept[r]; e < kept[r + 1]; ++e) {
          const int32_t l = cols[e - kept[r]];
          const double cost = c ? c[act.cols[l]] : cost_rows.at(act.rows[r], act.cols[l]);
          greedy[e] = {cost - row_dual[r] - col_dual[l], int32_t(fresh.first + e)};
          fresh.src[e] = int32_t(r);
          fresh.tgt[e] = na + l;
          fresh.cost[e] = shifted ? cost - shift_r[r] - shift_c[l] : cost;  // as add_arc
        }
      }
    });
    // Neighbour arcs alone often cannot carry the masses (two clouds apart: every neighbour of a
    // point may lie in its own cloud). Then the restricted optimum keeps mass on the artificial
    // arcs and its big-M potentials make every pricing round add useless arcs. So make the first
    // set feasible: fill a greedy plan over the neighbour arcs (smallest reduced cost first), then pair what is
    // left over row by row (a north-west corner), adding those arcs. That plan is also the
    // simplex's first basis (NOTE: [Feasible start]): every step empties a row or a column, so
    // the arcs that carry more than a crumb form a forest.
    // By (key, idx), as std::sort with that comparator would, skipping only arcs that could no
    // longer change the plan (NOTE: [Greedy prefix] in select.h).
    std::vector<double> left_a(supply), left_b(demand);
    std::vector<int64_t> basis;
    const double crumb = 1e-12 * sum_a;  // leftovers of rounding, not mass to route
    visit_in_key_order(
        greedy, kGreedyPrefix * size_t(na + ma),
        [&](const KeyIndex& e) {
          const int32_t er = simplex.arc_row(e.idx), el = simplex.arc_col(e.idx);
          const double f = std::min(left_a[er], left_b[el]);
          if (f > crumb) basis.push_back(e.idx);
          left_a[er] -= f;
          left_b[el] -= f;
        },
        [&](const KeyIndex& e) { return left_a[simplex.arc_row(e.idx)] == 0.0 || left_b[simplex.arc_col(e.idx)] == 0.0; });
    int32_t r = 0, l = 0;
    for (;;) {
      while (r < na && left_a[r] <= crumb) ++r;
      while (l < ma && left_b[l] <= crumb) ++l;
      if (r == na || l == ma) break;
      basis.push_back(simplex.real_arcs());
      add_arc(r, l, cost_rows.at(act.rows[r], act.cols[l]));
      const double f = std::min(left_a[r], left_b[l]);
      left_a[r] -= f;
      left_b[l] -= f;
    }
    if (options.feasible_start) simplex.start_from_forest(basis);
  }

  Solution sol;
  const int64_t add_per_row = options.add_per_row > 0 ? options.add_per_row : 32;
  PricingRound pricing(m, costs.matrix != nullptr, cost_rows, act, add_per_row, parallel_for, grain);
  bool local_last = false;  // the last round priced neighbourhoods only (SpatialStart::round)
  for (;;) {
    const int64_t before = sol.iterations;
    // Without a limit, still a hard one far above any normal solve (which needs about 10-50
    // pivots per node): a stalling run of degenerate pivots (seen once, from the big-M start with
    // feasible_start off, on 130 x 130 equal masses with tied costs) ends with the status
    // iteration_limit and a checked plan instead of a hang.
    const int64_t limit = options.max_iter >= 0 ? options.max_iter : 1000 * (int64_t(na) + ma) + 100000;
    const int64_t budget = std::max<int64_t>(0, limit - sol.iterations);
    sol.status = simplex.run(budget, sol.iterations);
    if (sol.status != Status::Optimal || complete) break;
    // A round that added arcs none of which entered: the only "violations" were at the
    // tolerance's edge (computed in a different order), so the current basis is optimal.
    if (sol.rounds > 0 && sol.iterations == before && !local_last) break;
    // A hard cap, so that no input can keep the rounds going: a round adds at least one arc that
    // enters, and an optimum needs far fewer rounds than this (about 10 in practice). Past it the
    // certificate below decides the status (imprecise rather than a hang).
    if (sol.rounds >= 64 + (na + ma) / 8) break;
    // Point clouds: price each row's neighbourhood first, far cheaper; only a round over every
    // pair (which runs when that finds nothing, or found arcs none of which entered) ends the loop.
    int64_t added = 0;
    const bool local = spatial && !(local_last && sol.iterations == before) &&
                       spatial_start.local_rounds < 64 + (na + ma) / 8;
    if (local) added = spatial_start.round(simplex, shift_r, shift_c, cost_rows, act, add_per_row, parallel_for, add_arc);
    local_last = added > 0;
    // Price every (row, column) pair; keep each row's most violating arcs (pricing.cpp).
    // Point clouds: the same round with distance bounds skipping blocks (NOTE: [Bounded pricing]).
    if (added == 0)
      ++sol.rounds, added = spatial && spatial_start.bounded.useful() ? spatial_start.bounded.round(simplex, shift_r, shift_c, cost_rows, act, add_per_row,
                                                                 parallel_for, add_arc)
                                    : pricing.round(simplex, shift_r, shift_c, add_arc);
#ifdef PYGAN_EMD_TRACE
    std::fprintf(stderr, "round %lld: pivots %lld, artificial flow %.3g, added %lld, arcs %lld\n",
                 (long long)sol.rounds, (long long)(sol.iterations - before), simplex.artificial_flow(),
                 (long long)added, (long long)simplex.real_arcs());
#endif
    if (added == 0) break;
  }
  if (sol.status == Status::Optimal && simplex.artificial_flow() > 1e-9 * sum_a) sol.status = Status::Infeasible;
  sol.arcs = simplex.real_arcs();

  // The plan: basic arcs with positive flow, as (active row, active column, flow).
  struct Entry {
    int32_t row, col;
    double flow;
  };
  std::vector<Entry> entries;
  std::vector<int64_t> basic;
  simplex.tree_real_arcs(basic);  // flow sits on tree arcs only
  for (const int64_t e : basic)
    if (simplex.arc_flow(e) > 0) entries.push_back({simplex.arc_row(e), simplex.arc_col(e), simplex.arc_flow(e)});
  if (sol.status == Status::IterationLimit) {
    // Stopped early: mass may still sit on the artificial arcs. Route it over real pairs (a
    // north-west corner over what is left), so that the plan returned meets the marginals even
    // though it is not optimal.
    std::vector<double> left_a(na), left_b(ma);
    for (int32_t r = 0; r < na; ++r) left_a[r] = simplex.artificial_flow_of(r);
    for (int32_t l = 0; l < ma; ++l) left_b[l] = simplex.artificial_flow_of(na + l);
    int32_t r = 0, l = 0;
    for (;;) {
      while (r < na && !(left_a[r] > 0)) ++r;
      while (l < ma && !(left_b[l] > 0)) ++l;
      if (r == na || l == ma) break;
      const double f = std::min(left_a[r], left_b[l]);
      entries.push_back({r, l, f});
      left_a[r] -= f;
      left_b[l] -= f;
      if (left_a[r] <= left_b[l]) ++r; else ++l;
    }
  }
  // Row-major order of the original indices, duplicates (a corner entry on a basic arc) merged.
  std::sort(entries.begin(), entries.end(), [&](const Entry& x, const Entry& y) {
    return std::make_pair(act.rows[x.row], act.cols[x.col]) < std::make_pair(act.rows[y.row], act.cols[y.col]);
  });
  double abs_cost = 0.0;  // sum of flow * |cost|: the scale of the cost's rounding
  for (size_t t = 0; t < entries.size();) {
    const Entry& e = entries[t];
    double f = 0.0;
    size_t q = t;
    for (; q < entries.size() && entries[q].row == e.row && entries[q].col == e.col; ++q) f += entries[q].flow;
    const int32_t i = act.rows[e.row], j = act.cols[e.col];
    const double c = cost_rows.at(i, j);
    sol.rows.push_back(i);
    sol.cols.push_back(j);
    sol.values.push_back(f);
    sol.cost += f * c;
    abs_cost += f * std::fabs(c);
    t = q;
  }

  // Duals: u_i = -pi(row), v_j = pi(column), where pi = level * M_eff + value (NOTE: [Symbolic
  // big-M]). The levels usually agree at the end; where a zero-flow artificial arc still splits
  // the tree, M_eff is the smallest M that keeps every pair between the parts dual feasible.
  simplex.normalise_potentials();
  const double* pi = simplex.potentials();
  const int32_t* lv = simplex.levels();
  double m_eff = 0.0;
  bool split = false;
  for (int32_t t = 0; t < na + ma; ++t) split = split || lv[t] != 0;
  if (split) {
    parallel_for(0, na, grain, [&](int64_t lo, int64_t hi) {
      std::vector<double> buffer(costs.matrix ? 0 : m);
      double need = 0.0;
      for (int64_t r = lo; r < hi; ++r) {
        const double* c = cost_rows.row(act.rows[r], buffer.data());
        for (int32_t l = 0; l < ma; ++l) {
          const int32_t dl = lv[r] - lv[na + l];
          if (dl > 0) need = std::max(need, -(c[act.cols[l]] + (pi[r] - shift_r[r]) - (pi[na + l] + shift_c[l])) / dl);
        }
      }
      std::lock_guard<std::mutex> guard(merge_mutex);
      m_eff = std::max(m_eff, need);
    });
  }
  const double inf = std::numeric_limits<double>::infinity();
  sol.u.assign(n, inf);
  sol.v.assign(m, inf);
  for (int32_t r = 0; r < na; ++r) sol.u[act.rows[r]] = -(pi[r] + lv[r] * m_eff) + shift_r[r];
  for (int32_t l = 0; l < ma; ++l) sol.v[act.cols[l]] = pi[na + l] + lv[na + l] * m_eff + shift_c[l];
  // Centre them as POT does (a.u == b.v), from the active duals alone: zero-mass rows and columns
  // add nothing to a.u or b.v, so their c-transforms below, taken against centred duals, come
  // out centred too.
  {
    double au = 0.0, bv = 0.0;
    for (int32_t r = 0; r < na; ++r) au += supply[r] * sol.u[act.rows[r]];
    for (int32_t l = 0; l < ma; ++l) bv += demand[l] * sol.v[act.cols[l]];
    const double centre = (bv - au) / (sum_a + sum_a);
    for (int32_t r = 0; r < na; ++r) sol.u[act.rows[r]] += centre;
    for (int32_t l = 0; l < ma; ++l) sol.v[act.cols[l]] -= centre;
  }
  // Zero-mass columns get c-transforms so that u_i + v_j <= C_ij holds for every pair; zero-mass
  // rows get theirs inside the certificate's own pass over their cost rows (their u is left +inf
  // for it: NOTE: [Certificate]), which saves a pass over those rows.
  // Row-wise (unit stride over whole cost rows, a loop that vectorises) unless only a few columns
  // lack mass: on an image with an empty background these were scalar lookups over most of M
  // (32 x 32 "shapes": 5 of its 6.5 ms before).
  std::vector<int32_t> zero_cols;
  for (int64_t j = 0; j < m; ++j)
    if (act.col_pos[j] < 0) zero_cols.push_back(static_cast<int32_t>(j));
  if (!zero_cols.empty() && int64_t(zero_cols.size()) * 16 >= m) {
    std::vector<double> buffer(costs.matrix ? 0 : m), best(m, inf);
    for (const int32_t i : act.rows) {
      const double* c = cost_rows.row(i, buffer.data());
      const double ui = sol.u[i];
      double* bj = best.data();
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) bj[j] = std::min(bj[j], c[j] - ui);
    }
    for (const int32_t j : zero_cols) sol.v[j] = best[j];
  } else {
    for (const int32_t j : zero_cols) {
      double best = inf;
      for (const int32_t i : act.rows) best = std::min(best, cost_rows.at(i, j) - sol.u[i]);
      sol.v[j] = best;
    }
  }

  const bool certified = certify(n, m, a, b_scaled.data(), sum_a, abs_cost, cost_rows, costs.matrix != nullptr, parallel_for,
                                 grain, sol);
  if (sol.status == Status::Optimal && !certified) sol.status = Status::Imprecise;
  // The stall guard above (not a limit the caller set): the certificate decides.
  if (sol.status == Status::IterationLimit && options.max_iter < 0)
    sol.status = certified ? Status::Optimal : Status::Imprecise;
  return sol;
}

}  // namespace pygan::emd
