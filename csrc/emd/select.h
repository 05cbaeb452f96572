// The k smallest of a stream of keys, for the first arc set of emd::solve (transport.cpp).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace pygan::emd {

struct KeyIndex {
  double key;
  int32_t idx;
};

// NOTE: [Buffered selection]
// A bounded heap (SmallestK in costs.h) pays O(log k) data-dependent moves per key below its
// threshold, and on a pixel grid the keys of a row fall in long runs toward the bowl of the
// matched pixel, so most keys are below the threshold: the first pass over M spent ~20 ns per
// pair on sifting (32 x 32 grids, half the time of a pricing-free solve).
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

// NOTE: [Greedy order]
// The greedy fill of emd::solve takes the first arcs by (reduced cost, index). This sorts them so
// for keys that are not NaN, given entries whose idx already increase (as that list is built):
// a stable least-significant-digit radix sort over the key's bits, mapped so that unsigned order
// is numeric order (-0.0 taken as +0.0: they compare equal, so idx decides), one byte a pass,
// skipping the bytes every key shares. Stability keeps the idx order within equal keys, so the
// order (and so the first basis) is exactly std::sort's by (key, idx). On the 199K arcs of
// non-uniform 1000 x 1500 clouds shifted (4, 2) 15 -> 6-8 ms, on the 408K of 3000 x 2000 shifted
// (2, 1) 32 -> 14-24 ms (1 thread, noisy machine; the same pivots: 14888 and 38510).
inline void radix_sort_by_key(std::vector<KeyIndex>& items) {
  const size_t size = items.size();
  if (size < 2) return;
  std::vector<uint64_t> bits(size), bits_tmp(size);
  std::vector<KeyIndex> tmp(size);
  std::vector<std::array<uint32_t, 256>> count(8);
  for (auto& c : count) c.fill(0);
  for (size_t t = 0; t < size; ++t) {
    const double key = items[t].key + 0.0;  // -0.0 -> +0.0
    uint64_t u;
    std::memcpy(&u, &key, sizeof u);
    u = (u >> 63) ? ~u : (u | (uint64_t(1) << 63));
    bits[t] = u;
    for (int d = 0; d < 8; ++d) ++count[d][(u >> (8 * d)) & 255];
  }
  for (int d = 0; d < 8; ++d) {
    const int shift = 8 * d;
    if (count[d][(bits[0] >> shift) & 255] == size) continue;  // every key shares this byte
    std::array<uint32_t, 256> at;
    uint32_t sum = 0;
    for (int q = 0; q < 256; ++q) at[q] = sum, sum += count[d][q];
    for (size_t t = 0; t < size; ++t) {
      const uint32_t to = at[(bits[t] >> shift) & 255]++;
      tmp[to] = items[t];
      bits_tmp[to] = bits[t];
    }
    items.swap(tmp);
    bits.swap(bits_tmp);
  }
}

}  // namespace pygan::emd
