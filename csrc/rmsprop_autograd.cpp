// rmsprop_step_'s Autograd kernel: a parameter update that records nothing (NOTE: [Parameter-update
// ops and autograd] in bump_versions.h).
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/library.h>

#include <optional>

#include "bump_versions.h"
#include "op_handles.h"

namespace pygan {
namespace {

void rmsprop_step_autograd(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                           at::TensorList momentum_buffers, at::TensorList grad_avgs, double lr,
                           double alpha, double eps, double weight_decay, double momentum,
                           bool centered, bool maximize, std::optional<double> clip_min,
                           std::optional<double> clip_max) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    rmsprop_step_op().call(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                           weight_decay, momentum, centered, maximize, clip_min, clip_max);
  }
  bump_versions(params);
  bump_versions(square_avgs);
  bump_versions(momentum_buffers);
  bump_versions(grad_avgs);
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) { m.impl("rmsprop_step_", rmsprop_step_autograd); }

}  // namespace pygan
