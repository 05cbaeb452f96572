// Every pygan op schema, in one place.
//
// Only the schemas. The rest of each op lives beside it: csrc/<op>.cpp its backend-neutral argument
// checks, csrc/cpu/<op>_cpu.cpp its CPU kernel (TORCH_LIBRARY_IMPL(pygan, CPU)), csrc/cuda/<op>_cuda.cu
// its CUDA kernel (TORCH_LIBRARY_IMPL(pygan, CUDA)), csrc/<op>_autograd.cpp its Autograd kernel
// (penalty_autograd.cpp for interpolate and grad_penalty). Fake (meta) kernels are registered from
// Python (pygan/ops.py, torch.library.register_fake).
#include <torch/library.h>

namespace pygan {

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

  // alpha[i] * real[i] + (1 - alpha[i]) * fake[i] for every sample i (dim 0), alpha of shape [B],
  // evaluated as fma(alpha, real, (1 - alpha) * fake) in float32 for 16-bit inputs. Differentiable
  // (the autograd kernel is in csrc/penalty_autograd.cpp).
  m.def("interpolate(Tensor real, Tensor fake, Tensor alpha) -> Tensor");

  // The gradient-penalty epilogue on per-sample gradients grads[i] (dim 0 is the batch): returns the
  // penalty ("none": [B]; "mean" / "sum": 0-d) and the per-sample norms ||grads[i]|| (accumulation
  // dtype, not differentiable; saved for the backward). csrc/penalty.h has the formulas.
  m.def(
      "grad_penalty(Tensor grads, float center, bool one_sided, str reduction) -> (Tensor, Tensor)");
  // grad_penalty's first-order backward: d(penalty)/d(grads) * grad_out, one pass over grads.
  // Differentiable itself (its backward, for double backward through the penalty, is in
  // csrc/penalty_autograd.cpp).
  m.def(
      "grad_penalty_backward(Tensor grad_out, Tensor grads, Tensor norms, float center, "
      "bool one_sided, str reduction) -> Tensor");
}

}  // namespace pygan
