// Every pygan op schema, in one place (one schema file, one loader, one reference module).
//
// Backend kernels live beside their ops: csrc/cpu/<op>_cpu.cpp registers TORCH_LIBRARY_IMPL(pygan, CPU)
// and csrc/cuda/<op>_cuda.cu registers TORCH_LIBRARY_IMPL(pygan, CUDA). Fake (meta) kernels are
// registered from Python (pygan/ops.py, torch.library.register_fake).
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/library.h>

#include "clip.h"
#include "op_handles.h"
#include "rmsprop.h"

namespace pygan {
namespace {

// NOTE: [Parameter-update ops and autograd]
// clip_ and rmsprop_step_ are parameter updates, like torch.optim's steps or `p.data.clamp_()`: they are
// not differentiable and must work on leaf parameters that require grad without an enclosing
// torch.no_grad(). So they get an explicit Autograd kernel that records nothing, bumps the version
// counter of every tensor it mutates (so a tensor saved for backward and then updated is still caught
// by autograd's "modified by an inplace operation" check), and redispatches below autograd.
void bump_versions(at::TensorList tensors) {
  for (const auto& t : tensors) {
    if (t.defined() && !t.is_inference()) t.unsafeGetTensorImpl()->bump_version();
  }
}

void clip_autograd(at::TensorList tensors, std::optional<double> min, std::optional<double> max) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    clip_op().call(tensors, min, max);
  }
  bump_versions(tensors);
}

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

TORCH_LIBRARY(pygan, m) {
  // Fake kernels and Python-side registrations live in pygan.ops.
  m.set_python_module("pygan.ops");

  // Clamp every element of every tensor to [min, max] in place (NaN propagates, like torch.clamp).
  // min/max None means unbounded on that side.
  m.def("clip_(Tensor(a!)[] tensors, float? min, float? max) -> ()");

  // One torch.optim.RMSprop step (same update, same order of operations) over many parameters, then
  // the clamp to [clip_min, clip_max]; every element of every tensor is read and written once.
  // momentum_buffers is empty when momentum == 0; grad_avgs is empty when centered is false.
  m.def(
      "rmsprop_step_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] square_avgs, "
      "Tensor(c!)[] momentum_buffers, Tensor(d!)[] grad_avgs, float lr, float alpha, float eps, "
      "float weight_decay, float momentum, bool centered, bool maximize, float? clip_min, "
      "float? clip_max) -> ()");

  // alpha[i] * real[i] + (1 - alpha[i]) * fake[i] for every sample i (dim 0), alpha of shape [B]; in
  // float32 for 16-bit inputs, rounded once. Differentiable (pygan.ops registers the autograd formula).
  m.def("interpolate(Tensor real, Tensor fake, Tensor alpha) -> Tensor");

  // The gradient-penalty epilogue on per-sample gradients grads[i] (dim 0 is the batch): returns the
  // penalty ("none": [B]; "mean" / "sum": 0-d) and the per-sample norms ||grads[i]|| (accumulation
  // dtype, not differentiable; saved for the backward). csrc/penalty.h has the formulas.
  m.def(
      "grad_penalty(Tensor grads, float center, bool one_sided, str reduction) -> (Tensor, Tensor)");
  // grad_penalty's first-order backward: d(penalty)/d(grads) * grad_out, one pass over grads.
  // Differentiable itself (its backward, for double backward through the penalty, is in pygan.ops).
  m.def(
      "grad_penalty_backward(Tensor grad_out, Tensor grads, Tensor norms, float center, "
      "bool one_sided, str reduction) -> Tensor");
}

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("clip_", clip_autograd);
  m.impl("rmsprop_step_", rmsprop_step_autograd);
}

}  // namespace pygan
