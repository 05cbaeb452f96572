// clip_'s argument checks and its strided-view clamp: backend-neutral, called by the CPU kernel
// (csrc/cpu/clip_cpu.cpp), the CUDA kernel (csrc/cuda/clip_cuda.cu) and rmsprop_step_'s checks.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <c10/util/irange.h>

#include <cmath>

#include "clip.h"

namespace pygan {

namespace {

bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

}  // namespace

void check_float_strided(const at::Tensor& t, const char* op, const char* arg, int64_t index) {
  TORCH_CHECK_TYPE(t.defined(), op, ": ", arg, "[", index, "] is undefined");
  TORCH_CHECK_TYPE(t.layout() == at::kStrided, op, ": ", arg, "[", index, "] has layout ", t.layout(),
                   "; expected a dense (strided) tensor");
  TORCH_CHECK_TYPE(is_supported_float(t.scalar_type()), op, ": ", arg, "[", index, "] has dtype ",
                   t.scalar_type(), "; expected float16, bfloat16, float32 or float64");
}

void check_writable(const at::Tensor& t, const char* op, const char* arg, int64_t index) {
  TORCH_CHECK_VALUE(at::has_internal_overlap(t) != at::MemOverlap::Yes, op, ": ", arg, "[", index,
                    "] has elements that share memory (an expand()ed tensor?); it cannot be updated "
                    "in place");
}

ClipBounds check_bounds(std::optional<double> min, std::optional<double> max, const char* op,
                        const char* min_name, const char* max_name) {
  TORCH_CHECK_VALUE(!min || !std::isnan(*min), op, ": ", min_name, " is NaN; expected a number or None");
  TORCH_CHECK_VALUE(!max || !std::isnan(*max), op, ": ", max_name, " is NaN; expected a number or None");
  const double lo = min ? *min : -INFINITY;
  const double hi = max ? *max : INFINITY;
  TORCH_CHECK_VALUE(lo <= hi, op, ": ", min_name, " (", lo, ") is greater than ", max_name, " (", hi,
                    ")");
  return {lo, hi};
}

ClipBounds check_clip_args(at::TensorList tensors, std::optional<double> min,
                           std::optional<double> max) {
  TORCH_CHECK_VALUE(min.has_value() || max.has_value(),
                    "clip_: at least one of min and max must not be None");
  const ClipBounds bounds = check_bounds(min, max, "clip_", "min", "max");
  for (const auto i : c10::irange(tensors.size())) {
    check_float_strided(tensors[i], "clip_", "tensors", i);
    check_writable(tensors[i], "clip_", "tensors", i);
  }
  return bounds;
}

void clamp_strided_(const at::Tensor& t, ClipBounds bounds) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "pygan::clip_", [&] {
    const double lo = static_cast<double>(static_cast<scalar_t>(bounds.lo));
    const double hi = static_cast<double>(static_cast<scalar_t>(bounds.hi));
    at::clamp_(const_cast<at::Tensor&>(t), lo, hi);
  });
}

}  // namespace pygan
