// A test driver for radix_sort_by_key (csrc/emd/select.h): tests/test_emd_select.py compiles it
// and compares its order with a sort by (key, idx) in Python.
//
// stdin: lists, each "count" then count keys (any form strtod reads: hex floats keep every bit).
// stdout per list: the idx of each entry in sorted order, space-separated (entry t has idx t).
#include <cstdio>
#include <vector>

#include "emd/select.h"

int main() {
  int count;
  while (std::scanf("%d", &count) == 1) {
    std::vector<pygan::emd::KeyIndex> items(count);
    for (int t = 0; t < count; ++t) {
      if (std::scanf("%lf", &items[t].key) != 1) return 2;
      items[t].idx = t;
    }
    pygan::emd::radix_sort_by_key(items);
    for (int t = 0; t < count; ++t) std::printf(t ? " %d" : "%d", items[t].idx);
    std::printf("\n");
  }
  return 0;
}
