// The k smallest of a stream of keys, for the first arc set of emd::solve (transport.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "radix_sort.h"

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
// a stable least-significant-digit radix sort over the key's bits (radix_sort.h: mapped so that
// unsigned order is numeric order, -0.0 taken as +0.0 as they compare equal, so idx decides; one
// byte a pass, skipping the bytes every key shares). Stability keeps the idx order within equal keys, so the
// order (and so the first basis) is exactly std::sort's by (key, idx). On the 199K arcs of
// non-uniform 1000 x 1500 clouds shifted (4, 2) 15 -> 6-8 ms, on the 408K of 3000 x 2000 shifted
// (2, 1) 32 -> 14-24 ms (1 thread, noisy machine; the same pivots: 14888 and 38510).
inline void radix_sort_by_key(std::vector<KeyIndex>& items) {
  std::vector<KeyIndex> scratch(items.size());
  radix_sort(items.data(), scratch.data(), static_cast<int64_t>(items.size()),
             [](const KeyIndex& e) { return sortable_bits(e.key); });
}

// NOTE: [Greedy prefix]
// The greedy fill reads the arcs in (key, idx) order, but its plan is mostly made by the first
// few (n + m) of them: then most rows and columns are empty (exactly 0: each step empties one
// side exactly, and what is left only shrinks), and an arc at an empty row or column changes
// nothing. Its last arcs still lie near the end of the order (a few rows and columns that only
// far arcs join), so the order cannot simply stop early. So: select the first `prefix` items
// (nth_element) and visit them sorted; then drop the rest whose `dead` says they can no longer
// change anything, and visit the survivors sorted. The visits are exactly those of the full order
// minus arcs that would have been no-ops, so the same first basis. The survivors go the same way
// again, the prefix doubling each time. The sort and the fill together, 1 thread, the same pivots:
// 408K arcs of 3000 x 2000 clouds 32 -> 12-14 ms, 225K of 1000 x 1500 9-15 -> 6-7 ms (a prefix of
// 4 (n + m); 1 and 2 measured no better, and a single pass over all survivors slower: too many
// rows and columns still have mass after the first prefix).
// Items must be non-NaN keys with distinct idx; `dead` must stay true once true.
template <class Visit, class Dead>
void visit_in_key_order(std::vector<KeyIndex>& items, size_t prefix, Visit visit, Dead dead) {
  auto by_key = [](const KeyIndex& x, const KeyIndex& y) { return x.key < y.key || (x.key == y.key && x.idx < y.idx); };
  if (prefix >= items.size()) {
    radix_sort_by_key(items);  // (entries in idx order: the stable sort is that order exactly)
    for (const KeyIndex& e : items) visit(e);
    return;
  }
  auto first = items.begin(), last = items.end();
  for (size_t take = prefix; first != last; take *= 2) {
    const auto cut = size_t(last - first) > take ? first + take : last;
    if (cut != last) std::nth_element(first, cut, last, by_key);
    std::sort(first, cut, by_key);
    for (auto it = first; it != cut; ++it) visit(*it);
    last = std::remove_if(cut, last, dead);
    first = cut;
  }
}

}  // namespace pygan::emd
