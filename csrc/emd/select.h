// The k smallest of a stream of keys, for the first arc set of emd::solve (transport.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace pygan::emd {

struct KeyIndex {
  double key;
  int32_t idx;
};

// NOTE: [Buffered selection]
// A bounded heap (SmallestK in costs.h) pays O(log k) data-dependent moves per key below its
// threshold, and on a pixel grid the keys of a row (or of a column, in row order) fall in long
// runs toward the bowl of the matched pixel, so most keys are below the threshold: the first pass
// over M spent ~20 ns per pair on sifting (32 x 32 grids, half the time of a pricing-free solve).
// This keeps an unsorted buffer of 2k slots instead: a key below the threshold is appended; a full
// buffer is cut to its k smallest by nth_element and the threshold becomes the k-th smallest.
// Every cut drops k keys, so the cost is O(1) per key appended whatever the order.
struct KBuffer {
  KeyIndex* slot;  // 2k slots
  int32_t k, size = 0;
  double threshold = std::numeric_limits<double>::infinity();

  void push(double value, int32_t index) {
    if (!(value < threshold)) return;
    slot[size++] = {value, index};
    if (size == 2 * k) cut();
  }
  // Keeps the k smallest (at most k entries remain), the k-th smallest becoming the threshold.
  void cut() {
    if (size <= k) return;
    std::nth_element(slot, slot + (k - 1), slot + size, [](const KeyIndex& x, const KeyIndex& y) { return x.key < y.key; });
    size = k;
    threshold = slot[k - 1].key;
  }
};

}  // namespace pygan::emd
