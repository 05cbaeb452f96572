// rmsprop_step_'s argument checks: backend-neutral, called by the CPU kernel (csrc/cpu/rmsprop_cpu.cpp)
// and the CUDA kernel (csrc/cuda/rmsprop_cuda.cu) before anything is written.
#include <ATen/ATen.h>
#include <c10/util/irange.h>

#include <cmath>

#include "rmsprop.h"

namespace pygan {

namespace {

void check_hyper(double value, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(value) && value >= 0.0, "rmsprop_step_: ", name,
                    " must be a finite number >= 0, got ", value);
}

// A state or gradient tensor must match its parameter exactly: the kernel walks them in lock step.
void check_companion(const at::Tensor& t, const at::Tensor& p, const char* arg, int64_t i) {
  check_float_strided(t, "rmsprop_step_", arg, i);
  TORCH_CHECK_VALUE(t.sizes() == p.sizes(), "rmsprop_step_: ", arg, "[", i, "] has shape ", t.sizes(),
                    " but params[", i, "] has shape ", p.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == p.scalar_type(), "rmsprop_step_: ", arg, "[", i, "] has dtype ",
                   t.scalar_type(), " but params[", i, "] has dtype ", p.scalar_type());
  TORCH_CHECK_VALUE(t.device() == p.device(), "rmsprop_step_: ", arg, "[", i, "] is on ", t.device(),
                    " but params[", i, "] is on ", p.device());
}

void check_list_size(at::TensorList list, size_t expected, const char* name, const char* when) {
  TORCH_CHECK_VALUE(list.size() == expected, "rmsprop_step_: ", name, " has ", list.size(),
                    " tensors; expected ", expected, " (", when, ")");
}

}  // namespace

RMSpropOptions check_rmsprop_args(at::TensorList params, at::TensorList grads,
                                  at::TensorList square_avgs, at::TensorList momentum_buffers,
                                  at::TensorList grad_avgs, double lr, double alpha, double eps,
                                  double weight_decay, double momentum, bool centered, bool maximize,
                                  std::optional<double> clip_min, std::optional<double> clip_max) {
  check_hyper(lr, "lr");
  check_hyper(alpha, "alpha");
  check_hyper(eps, "eps");
  check_hyper(weight_decay, "weight_decay");
  check_hyper(momentum, "momentum");
  const size_t n = params.size();
  check_list_size(grads, n, "grads", "one per parameter");
  check_list_size(square_avgs, n, "square_avgs", "one per parameter");
  check_list_size(momentum_buffers, momentum > 0 ? n : 0, "momentum_buffers",
                  "one per parameter when momentum > 0, none otherwise");
  check_list_size(grad_avgs, centered ? n : 0, "grad_avgs",
                  "one per parameter when centered, none otherwise");
  for (const auto i : c10::irange(n)) {
    check_float_strided(params[i], "rmsprop_step_", "params", i);
    check_writable(params[i], "rmsprop_step_", "params", i);
    TORCH_CHECK_TYPE(!grads[i].defined() || grads[i].layout() == at::kStrided,
                     "rmsprop_step_: grads[", i, "] is sparse; RMSprop does not support sparse gradients");
    check_companion(grads[i], params[i], "grads", i);
    check_companion(square_avgs[i], params[i], "square_avgs", i);
    check_writable(square_avgs[i], "rmsprop_step_", "square_avgs", i);
    if (momentum > 0) {
      check_companion(momentum_buffers[i], params[i], "momentum_buffers", i);
      check_writable(momentum_buffers[i], "rmsprop_step_", "momentum_buffers", i);
    }
    if (centered) {
      check_companion(grad_avgs[i], params[i], "grad_avgs", i);
      check_writable(grad_avgs[i], "rmsprop_step_", "grad_avgs", i);
    }
  }
  RMSpropOptions opt{lr, alpha, eps, weight_decay, momentum, centered, maximize,
                     clip_min.has_value() || clip_max.has_value(), {-INFINITY, INFINITY}};
  if (opt.has_clip) opt.clip = check_bounds(clip_min, clip_max, "rmsprop_step_", "clip_min", "clip_max");
  return opt;
}

}  // namespace pygan
