// NOTE: [Complete start]
// A problem small enough to give the simplex every (row, column) pair (transport.cpp: at most 128 x
// 128 pairs, or few rows or columns) starts from a feasible basis instead of the big-M tree (NOTE:
// [Feasible start] in network_simplex.h): the row-minimum fill, where each row in turn sends what
// it has left to its cheapest column with demand left until it is empty. Every step empties a row
// or a column, so the arcs that carry more than a crumb form a forest. O((n + m) m), each step one
// vectorised pass over the row (columns without demand masked by +inf) and a search for the
// minimum's first position. Measured on 2-D clouds with random weights (Euclidean costs, mean of 20
// problems of 64 x 64 and 10 of 128 x 128): the pivots drop from 401 / 971 (big-M start) to 307 /
// 791, the time by 5-10%; a global least-cost fill (a sort of every pair) saves more pivots (236 /
// 651) but its sort costs more than they do, and a least-cost fill over each row's 4 cheapest arcs
// sat in between (247 / 678 pivots, no faster). With the vectorised entering search (NOTE:
// [Complete pricing] in network_simplex.h), on 20 / 10 such clouds with squared Euclidean costs,
// one process alternating the fills, min of 21 / 11 runs each: this vectorised pass took a solve
// from 172 to 158 us (64 x 64) and from 737 to 705 us (128 x 128) against the former scalar loop.
// Tried there as well: rows in the order of their regrets (the gap between a row's two smallest
// costs, largest first; 294 / 770 pivots, 167 / 705 us), rows and columns together by regret (291 /
// 704 pivots, slower at both sizes: the columns need a transposed copy), and Vogel's method with
// the regrets kept current (238 / 670 pivots, 1.4-1.9x the solve time): fewer pivots, none faster.
// Uniform square problems do not come here (the assignment solver takes them).
#include <algorithm>
#include <limits>
#include <vector>

#include "emd/internal.h"

namespace pygan::emd {

constexpr int64_t kCompleteStartMax = 128 * 128;

void complete_start_basis(int32_t na, int32_t ma, const double* cost, const std::vector<double>& supply,
                          const std::vector<double>& demand, double crumb, std::vector<int64_t>& basis) {
  basis.clear();
  // A complete set with few rows or columns can be long on the other side (10 x 1e5): the fill's
  // (n + m) m would then cost more than the big-M start's pivots, so those keep it.
  if (int64_t(na) * ma > kCompleteStartMax) return;
  const double inf = std::numeric_limits<double>::infinity();
  // left_b: the demand each column still has; closed: 0 while that is more than a crumb, +inf after.
  thread_local std::vector<double> left_b, closed;
  left_b.assign(demand.begin(), demand.end());
  closed.resize(ma);
  for (int32_t l = 0; l < ma; ++l) closed[l] = left_b[l] > crumb ? 0.0 : inf;
  const double* shut = closed.data();
  for (int32_t r = 0; r < na; ++r) {
    const double* c = cost + int64_t(r) * ma;
    double left = supply[r];
    while (left > crumb) {
      // The cheapest open column (the first of equal ones, as a scalar scan would pick).
      double best = inf;
#pragma omp simd reduction(min : best)
      for (int32_t l = 0; l < ma; ++l) best = std::min(best, c[l] + shut[l]);
      if (!(best < inf)) break;  // only rounding-sized mass left: the start tree's artificial arcs keep it
      int32_t at = 0;
      while (c[at] + shut[at] != best) ++at;
      const double f = std::min(left, left_b[at]);
      basis.push_back(int64_t(r) * ma + at);
      left -= f;
      left_b[at] -= f;
      if (!(left_b[at] > crumb)) closed[at] = inf;
    }
  }
}

}  // namespace pygan::emd
