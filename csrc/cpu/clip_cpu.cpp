// clip_ on CPU: the vectorised multi-tensor clamp (the argument checks are in csrc/clip.cpp).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/irange.h>
#include <torch/library.h>

#include <cmath>
#include <map>

#include "clip.h"
#include "segments.h"

namespace pygan {

namespace {

struct ClipSegment {
  void* data;
  int64_t numel;
};

// The same expression as torch's clamp_scalar CPU kernel (vec::minimum(vec::maximum(a, lo), hi) and
// std::min(std::max(a, lo), hi)), with the bounds first converted to scalar_t as torch does: results
// match torch.clamp, and NaN propagates.
template <typename scalar_t>
void clamp_run(scalar_t* data, int64_t n, scalar_t lo, scalar_t hi) {
  using Vec = at::vec::Vectorized<scalar_t>;
  int64_t i = 0;
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    const Vec lo_vec(lo), hi_vec(hi);
    for (; i + Vec::size() <= n; i += Vec::size()) {
      at::vec::minimum(at::vec::maximum(Vec::loadu(data + i), lo_vec), hi_vec).store(data + i);
    }
  } else {
    // NOTE: [16-bit floats clamp in float32]
    // torch 2.13's AVX512 vec::maximum/minimum for Vectorized<Half/BFloat16> broadcast the NaN
    // bitmask itself (_mm512_set1_epi32(mask)) instead of a per-lane all-ones mask, so lanes next to
    // a NaN come out wrong. Clamping in float32 avoids it and is exact: the element and the bounds
    // (already rounded to scalar_t) are representable in scalar_t, so min/max returns one of them.
    using fVec = at::vec::Vectorized<float>;
    const fVec lo_vec(static_cast<float>(lo)), hi_vec(static_cast<float>(hi));
    for (; i + Vec::size() <= n; i += Vec::size()) {
      auto [a, b] = at::vec::convert_to_float<scalar_t>(Vec::loadu(data + i));
      a = at::vec::minimum(at::vec::maximum(a, lo_vec), hi_vec);
      b = at::vec::minimum(at::vec::maximum(b, lo_vec), hi_vec);
      at::vec::convert_from_float<scalar_t>(a, b).store(data + i);
    }
  }
  for (; i < n; ++i) data[i] = std::min(std::max(data[i], lo), hi);
}

}  // namespace

void clip_cpu_impl(at::TensorList tensors, ClipBounds bounds) {
  // Group flat tensors by dtype; the rare non-flat one (a strided view) uses torch's own clamp_.
  std::map<at::ScalarType, std::vector<ClipSegment>> groups;
  for (const auto& t : tensors) {
    if (t.numel() == 0) continue;
    if (is_flat(t)) {
      groups[t.scalar_type()].push_back({t.data_ptr(), t.numel()});
    } else {
      clamp_strided_(t, bounds);
    }
  }
  for (const auto& [dtype, segments] : groups) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "pygan::clip_", [&] {
      const auto lo = static_cast<scalar_t>(bounds.lo);
      const auto hi = static_cast<scalar_t>(bounds.hi);
      // 64K elements per thread at least: below that a clamp (one load, two compares, one store)
      // costs less than waking a second thread (measured: 2 threads gain nothing at 64K elements).
      parallel_over_segments(segments, 2 * at::internal::GRAIN_SIZE,
                             [&](const ClipSegment& s, int64_t begin, int64_t end) {
                               clamp_run(static_cast<scalar_t*>(s.data) + begin, end - begin, lo, hi);
                             });
    });
  }
}

namespace {

void clip_cpu(at::TensorList tensors, std::optional<double> min, std::optional<double> max) {
  const ClipBounds bounds = check_clip_args(tensors, min, max);
  for (const auto i : c10::irange(tensors.size())) {
    TORCH_CHECK_VALUE(tensors[i].device().is_cpu(), "clip_: tensors[", i, "] is on ",
                      tensors[i].device(), "; the CPU kernel takes CPU tensors only");
  }
  clip_cpu_impl(tensors, bounds);
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) { m.impl("clip_", clip_cpu); }

}  // namespace pygan
