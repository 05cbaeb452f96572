// clip_: declarations shared by its argument checks (csrc/clip.cpp) and its CPU and CUDA kernels
// (csrc/cpu/clip_cpu.cpp, csrc/cuda/clip_cuda.cu).
#pragma once

#include <ATen/core/Tensor.h>
#include <optional>

namespace pygan {

// Bounds after validation: an absent bound becomes -inf / +inf, which clamps nothing and keeps NaN.
struct ClipBounds {
  double lo;
  double hi;
};

// Validates every argument of clip_ before any tensor is touched (nothing is ever half-applied):
// floating dtypes only, strided (not sparse) layout, no internal overlap, bounds not NaN, min <= max.
// Raises ValueError / TypeError (TORCH_CHECK_VALUE / TORCH_CHECK_TYPE) naming the argument.
ClipBounds check_clip_args(at::TensorList tensors, std::optional<double> min, std::optional<double> max);

// Shared argument checks (also used by rmsprop_step_ and the CUDA kernels). `op` and `arg` name what
// the error message names, e.g. "clip_: tensors[3] has dtype Long; expected float16, ...".
void check_float_strided(const at::Tensor& t, const char* op, const char* arg, int64_t index);
void check_writable(const at::Tensor& t, const char* op, const char* arg, int64_t index);
ClipBounds check_bounds(std::optional<double> min, std::optional<double> max, const char* op,
                        const char* min_name, const char* max_name);

// Clamps one tensor that is not a flat run (a strided view) with torch's clamp_, the bounds first
// rounded to its dtype exactly as the fused kernels round them (beyond the dtype's range: +-inf), so
// every layout gives the same result and torch's overflow error for such bounds never fires.
void clamp_strided_(const at::Tensor& t, ClipBounds bounds);

// Clamps CPU tensors in place. Arguments must have passed check_clip_args.
void clip_cpu_impl(at::TensorList tensors, ClipBounds bounds);

// True when `t` can be processed as one flat run of t.numel() elements starting at t.data_ptr().
inline bool is_flat(const at::Tensor& t) { return t.is_non_overlapping_and_dense(); }

}  // namespace pygan
