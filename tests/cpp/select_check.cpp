// A test driver for the greedy fill's ordering (csrc/emd/select.h): tests/test_emd_select.py
// compiles it and compares its answers with a sort by (key, idx) in Python.
//
// stdin, one problem after another (numbers in any form strtod reads: hex floats keep every bit):
//   "S count" then count keys: radix_sort_by_key; prints the idx of each entry in sorted order
//     (entry t has idx t), space-separated.
//   "G rows cols count prefix" then rows supplies, cols demands, and count arcs "key row col":
//     the greedy fill of emd::solve through visit_in_key_order with that prefix (crumb
//     1e-12 * total supply); prints the idx of the arcs that carry more than a crumb, in order.
#include <cstdio>
#include <vector>

#include "emd/select.h"

namespace {

bool sort_case() {
  int count;
  if (std::scanf("%d", &count) != 1) return false;
  std::vector<pygan::emd::KeyIndex> items(count);
  for (int t = 0; t < count; ++t) {
    if (std::scanf("%lf", &items[t].key) != 1) return false;
    items[t].idx = t;
  }
  pygan::emd::radix_sort_by_key(items);
  for (int t = 0; t < count; ++t) std::printf(t ? " %d" : "%d", items[t].idx);
  std::printf("\n");
  return true;
}

bool greedy_case() {
  int rows, cols, count;
  long prefix;
  if (std::scanf("%d %d %d %ld", &rows, &cols, &count, &prefix) != 4) return false;
  std::vector<double> left_a(rows), left_b(cols);
  double total = 0.0;
  for (double& s : left_a) {
    if (std::scanf("%lf", &s) != 1) return false;
    total += s;
  }
  for (double& d : left_b)
    if (std::scanf("%lf", &d) != 1) return false;
  std::vector<pygan::emd::KeyIndex> items(count);
  std::vector<int> arc_row(count), arc_col(count);
  for (int t = 0; t < count; ++t) {
    if (std::scanf("%lf %d %d", &items[t].key, &arc_row[t], &arc_col[t]) != 3) return false;
    items[t].idx = t;
  }
  const double crumb = 1e-12 * total;
  std::vector<int> basis;
  pygan::emd::visit_in_key_order(
      items, static_cast<size_t>(prefix),
      [&](const pygan::emd::KeyIndex& e) {
        const int r = arc_row[e.idx], l = arc_col[e.idx];
        const double f = left_a[r] < left_b[l] ? left_a[r] : left_b[l];
        if (f > crumb) basis.push_back(e.idx);
        left_a[r] -= f;
        left_b[l] -= f;
      },
      [&](const pygan::emd::KeyIndex& e) { return left_a[arc_row[e.idx]] == 0.0 || left_b[arc_col[e.idx]] == 0.0; });
  for (size_t t = 0; t < basis.size(); ++t) std::printf(t ? " %d" : "%d", basis[t]);
  std::printf("\n");
  return true;
}

}  // namespace

int main() {
  char mode;
  while (std::scanf(" %c", &mode) == 1) {
    if (!(mode == 'S' ? sort_case() : mode == 'G' ? greedy_case() : false)) return 2;
  }
  return 0;
}
