// A test driver for the network simplex's tree code (tests/test_emd_tree.py compiles it with
// -DPYGAN_EMD_CHECK_TREE, so every invariant of the spanning tree is checked after every pivot and
// a broken one aborts). It needs only the torch-free core: csrc/emd/network_simplex.cpp.
//
// stdin: problems, each "n m start split" then n supplies, m demands and n*m costs (row-major);
// start 1 builds the first basis from a greedy plan over the first arcs (completed by a north-west
// corner over added arcs where those cannot carry all the mass; start_from_forest), 0 keeps the
// big-M tree;
// split 1 gives the simplex the even-numbered arcs first, solves, then adds the rest and resumes;
// split 2 adds every arc in one block (add_complete_arcs) and prices with the complete problem's
// row-wise search (use_complete_pricing), as the solver does for small problems.
// stdout per problem: "status cost pivots" (status as emd::Status's integer).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "emd/network_simplex.h"

using pygan::emd::TransportSimplex;

int main() {
  int n, m, start, split;
  while (std::scanf("%d %d %d %d", &n, &m, &start, &split) == 4) {
    std::vector<double> a(n), b(m), c(size_t(n) * m);
    for (double& x : a) std::scanf("%lf", &x);
    for (double& x : b) std::scanf("%lf", &x);
    for (double& x : c) std::scanf("%lf", &x);
    TransportSimplex simplex(n, m, a.data(), b.data());
    std::vector<int64_t> order(size_t(n) * m);
    std::iota(order.begin(), order.end(), 0);
    if (split == 1) std::stable_partition(order.begin(), order.end(), [](int64_t k) { return k % 2 == 0; });
    const size_t first = split == 1 ? (order.size() + 1) / 2 : order.size();
    if (split == 2) std::copy(c.begin(), c.end(), simplex.add_complete_arcs());
    else for (size_t t = 0; t < first; ++t) simplex.add_arc(int32_t(order[t] / m), int32_t(order[t] % m), c[order[t]]);
    if (start) {
      // Greedy by cost over the first arcs: every step empties a row or a column (a forest).
      std::vector<int64_t> by_cost(first), basis;
      std::iota(by_cost.begin(), by_cost.end(), 0);
      std::stable_sort(by_cost.begin(), by_cost.end(),
                       [&](int64_t x, int64_t y) { return c[order[x]] < c[order[y]]; });
      std::vector<double> left_a(a), left_b(b);
      for (const int64_t k : by_cost) {
        const int32_t r = int32_t(order[k] / m), l = int32_t(order[k] % m);
        const double f = std::min(left_a[r], left_b[l]);
        if (f > 1e-12) basis.push_back(k);
        left_a[r] -= f, left_b[l] -= f;
      }
      // With only part of the arcs the greedy plan may leave mass over: pair it row by row (a
      // north-west corner) over added arcs, as the solver's own start does, so that the forest
      // routes all the mass (start_from_forest's precondition).
      for (int32_t r = 0, l = 0;;) {
        while (r < n && left_a[r] <= 1e-12) ++r;
        while (l < m && left_b[l] <= 1e-12) ++l;
        if (r == n || l == m) break;
        basis.push_back(simplex.real_arcs());
        simplex.add_arc(r, l, c[size_t(r) * m + l]);
        const double f = std::min(left_a[r], left_b[l]);
        left_a[r] -= f, left_b[l] -= f;
      }
      simplex.start_from_forest(basis);
    }
    if (split == 2) {
      double largest = 0.0;
      for (const double x : c) largest = std::max(largest, std::fabs(x));
      simplex.use_complete_pricing(largest);
    }
    int64_t pivots = 0;
    auto status = simplex.run(-1, pivots);
    if (split == 1) {
      for (size_t t = first; t < order.size(); ++t)
        simplex.add_arc(int32_t(order[t] / m), int32_t(order[t] % m), c[order[t]]);
      status = simplex.run(-1, pivots);
    }
    double cost = 0.0;
    for (int64_t k = 0; k < simplex.real_arcs(); ++k) cost += simplex.arc_flow(k) * simplex.arc_cost(k);
    std::printf("%d %.17g %lld\n", int(status), cost, (long long)pivots);
  }
  return 0;
}
