// rmsprop_step_: shared declarations of the CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <optional>

#include "clip.h"

namespace pygan {

// The hyper-parameters of one step, validated. clip holds (-inf, +inf) when no clamp is asked for.
struct RMSpropOptions {
  double lr;
  double alpha;
  double eps;
  double weight_decay;
  double momentum;
  bool centered;
  bool maximize;
  bool has_clip;
  ClipBounds clip;
};

// Validates every argument of rmsprop_step_ before anything is written: list lengths, per-parameter
// shapes/dtypes/devices of params, grads and state, floating dtypes, strided layouts, hyper-parameter
// ranges (those torch.optim.RMSprop checks) and the clip bounds. Raises ValueError / TypeError.
RMSpropOptions check_rmsprop_args(at::TensorList params, at::TensorList grads,
                                  at::TensorList square_avgs, at::TensorList momentum_buffers,
                                  at::TensorList grad_avgs, double lr, double alpha, double eps,
                                  double weight_decay, double momentum, bool centered, bool maximize,
                                  std::optional<double> clip_min, std::optional<double> clip_max);

// True when every defined tensor is a flat run (pygan::is_flat) with the strides of tensors[0], the
// parameter: then element i from data_ptr() is the same logical element in all of them, and the
// kernels can walk them in lock step. Otherwise they run on contiguous copies.
inline bool same_flat_layout(at::ArrayRef<at::Tensor> tensors) {
  const at::Tensor& p = tensors[0];
  if (!is_flat(p)) return false;
  for (const auto& t : tensors) {
    if (t.defined() && (!is_flat(t) || t.strides() != p.strides())) return false;
  }
  return true;
}

// One fused step over CPU tensors. Arguments must have passed check_rmsprop_args.
void rmsprop_step_cpu_impl(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                           at::TensorList momentum_buffers, at::TensorList grad_avgs,
                           const RMSpropOptions& opt);

}  // namespace pygan
