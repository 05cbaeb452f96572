// Helpers shared by the CPU multi-tensor kernels: one at::parallel_for over all elements of many tensors.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pygan {

// NOTE: [One parallel range over many tensors]
// A critic's parameters are many tensors of very different sizes (a 512x512 weight next to a bias of
// 1). Launching one parallel region per tensor costs a fork/join per tensor, which dominates for small
// critics; splitting each tensor separately leaves threads idle on the small ones. Instead every
// tensor becomes a segment of one virtual flat range, parallel_for splits that range evenly, and each
// thread walks the segments its slice touches. Segments must be flat (pygan::is_flat): their numel()
// elements are contiguous in memory from data_ptr(), in any order, which is all an elementwise op needs.
template <typename Segment, typename Fn>
void parallel_over_segments(const std::vector<Segment>& segments, int64_t grain_size, const Fn& fn) {
  std::vector<int64_t> offsets(segments.size() + 1, 0);
  for (size_t k = 0; k < segments.size(); ++k) offsets[k + 1] = offsets[k] + segments[k].numel;
  const int64_t total = offsets.back();
  if (total == 0) return;
  at::parallel_for(0, total, grain_size, [&](int64_t begin, int64_t end) {
    // The segment holding `begin`: the last offset <= begin (empty segments are never stored).
    size_t k = std::upper_bound(offsets.begin(), offsets.end(), begin) - offsets.begin() - 1;
    while (begin < end) {
      const int64_t stop = std::min(end, offsets[k + 1]);
      fn(segments[k], begin - offsets[k], stop - offsets[k]);
      begin = stop;
      ++k;
    }
  });
}

}  // namespace pygan
