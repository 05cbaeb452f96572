// A stable least-significant-digit radix sort of records keyed by a float64 value: the sort of
// the 1-D solver (csrc/emd/sorted_1d.cpp) for sides of kRadixMinSize points or more, and of the
// greedy fill's arcs by reduced cost (select.h: radix_sort_by_key).
//
// Why: a comparison sort of n doubles costs n log n branchy comparisons (std::sort: ~100 ms per
// million points on one core); the radix sort reads the keys once to count digits and then moves
// each record once per byte of the key (eight passes, fewer where a byte is common to all keys):
// 3.5-4x less time at 1e5..1e7 points, measured on one core of an AVX2 machine (std::sort
// 8.6 / 100 / 1140 ms, this sort 1.7-2.4 / 25-28 / 270-290 ms for 1e5 / 1e6 / 1e7 normal
// values). 11-bit digits (six passes) measured no faster at 1e5..1e6 and slower at 1e7: their
// 2048 destinations per pass stream through more pages at once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace pygan::emd {

// The order-preserving map of a finite double onto uint64: a positive value gets its sign bit
// set, a negative one all bits flipped, so unsigned order is numeric order. -0.0 is mapped as
// +0.0 first: equal values get equal keys, and the stable sort keeps their input order.
inline uint64_t sortable_bits(double x) {
  x += 0.0;
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u ^ ((uint64_t{0} - (u >> 63)) | uint64_t{1} << 63);  // branch-free: signs are random
}

constexpr int kRadixBits = 8;
constexpr int kRadixPasses = 8;  // 8 x 8 = 64 bits
constexpr int64_t kRadixMinSize = 2048;  // below it std::sort is as fast (measured on 1 core)

// Sorts records[0, n) by key(record) (a uint64 from sortable_bits) ascending; stable. scratch
// holds n records. A digit that every key shares costs no pass (the exponents of values in a
// narrow range, say). n must be below 2^32 (the digit counts are 32-bit).
template <class Record, class Key>
void radix_sort(Record* records, Record* scratch, int64_t n, Key key) {
  constexpr int kBuckets = 1 << kRadixBits;
  constexpr uint64_t kMask = kBuckets - 1;
  if (n < 2) return;
  std::vector<uint32_t> counts(static_cast<size_t>(kRadixPasses) * kBuckets, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k = key(records[i]);
    for (int pass = 0; pass < kRadixPasses; ++pass) ++counts[pass * kBuckets + ((k >> (pass * kRadixBits)) & kMask)];
  }
  Record* from = records;
  Record* to = scratch;
  const uint64_t first = key(records[0]);
  for (int pass = 0; pass < kRadixPasses; ++pass) {
    const int shift = pass * kRadixBits;
    uint32_t* offsets = counts.data() + pass * kBuckets;
    if (offsets[(first >> shift) & kMask] == static_cast<uint32_t>(n)) continue;  // one digit for all
    uint32_t running = 0;
    for (int d = 0; d < kBuckets; ++d) {
      const uint32_t c = offsets[d];
      offsets[d] = running;
      running += c;
    }
    for (int64_t i = 0; i < n; ++i) {
      const Record r = from[i];
      to[offsets[(key(r) >> shift) & kMask]++] = r;
    }
    std::swap(from, to);
  }
  if (from != records) std::copy(from, from + n, records);
}

}  // namespace pygan::emd
