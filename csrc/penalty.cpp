// The argument checks of interpolate, grad_penalty and grad_penalty_backward (declared in penalty.h):
// backend-neutral, called by the CPU kernels (csrc/cpu/penalty_cpu.cpp) and the CUDA kernels
// (csrc/cuda/penalty_cuda.cu) before anything is computed.
#include <ATen/ATen.h>

#include <cmath>

#include "penalty.h"

namespace pygan {

Reduction parse_reduction(c10::string_view reduction, const char* op) {
  if (reduction == "none") return Reduction::None;
  if (reduction == "mean") return Reduction::Mean;
  if (reduction == "sum") return Reduction::Sum;
  TORCH_CHECK_VALUE(false, op, ": reduction must be 'none', 'mean' or 'sum', got '", reduction, "'");
  return Reduction::None;  // not reached
}

bool is_sample_blocked(const at::Tensor& t) {
  if (!t.is_non_overlapping_and_dense()) return false;
  if (t.dim() == 0 || t.size(0) <= 1 || t.numel() == 0) return true;
  return t.stride(0) == t.numel() / t.size(0);
}

at::ScalarType acc_dtype(at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) ? at::kFloat : at::kDouble;
}

namespace {

bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

void check_batched_float(const at::Tensor& t, const char* op, const char* arg) {
  TORCH_CHECK_TYPE(t.defined(), op, ": ", arg, " is undefined");
  TORCH_CHECK_TYPE(t.layout() == at::kStrided, op, ": ", arg, " has layout ", t.layout(),
                   "; expected a dense (strided) tensor");
  TORCH_CHECK_TYPE(is_supported_float(t.scalar_type()), op, ": ", arg, " has dtype ", t.scalar_type(),
                   "; expected float16, bfloat16, float32 or float64");
  TORCH_CHECK_VALUE(t.dim() >= 1, op, ": ", arg,
                    " is 0-d; expected a batch of samples along dim 0 (shape [B, ...])");
}

void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* arg,
                       const char* ref_arg) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), op, ": ", arg, " is on ", t.device(), " but ", ref_arg,
                    " is on ", ref.device());
}

}  // namespace

InterpolateInputs check_interpolate_args(const at::Tensor& real, const at::Tensor& fake,
                                         const at::Tensor& alpha) {
  constexpr const char* op = "interpolate";
  check_batched_float(real, op, "real");
  check_batched_float(fake, op, "fake");
  TORCH_CHECK_VALUE(real.sizes() == fake.sizes(), op, ": real has shape ", real.sizes(),
                    " but fake has shape ", fake.sizes(), "; expected equal shapes");
  TORCH_CHECK_TYPE(real.scalar_type() == fake.scalar_type(), op, ": real has dtype ",
                   real.scalar_type(), " but fake has dtype ", fake.scalar_type());
  check_same_device(fake, real, op, "fake", "real");
  const int64_t batch = real.size(0);
  TORCH_CHECK_TYPE(alpha.defined() && alpha.layout() == at::kStrided, op,
                   ": alpha must be a dense tensor of shape [B]");
  TORCH_CHECK_VALUE(alpha.dim() == 1 && alpha.size(0) == batch, op, ": alpha has shape ",
                    alpha.sizes(), "; expected [", batch, "] (one weight per sample of real)");
  TORCH_CHECK_TYPE(alpha.scalar_type() == real.scalar_type(), op, ": alpha has dtype ",
                   alpha.scalar_type(), " but real has dtype ", real.scalar_type());
  check_same_device(alpha, real, op, "alpha", "real");

  InterpolateInputs in{real, fake, alpha.contiguous(), batch, batch ? real.numel() / batch : 0};
  // Both operands must share one sample-blocked layout; copy the one that does not (or both) rather
  // than writing a strided kernel: autograd's gradients and generator outputs are nearly always
  // contiguous or channels_last already.
  const bool real_ok = is_sample_blocked(real);
  const bool fake_ok = is_sample_blocked(fake);
  if (real_ok && fake_ok && real.strides() == fake.strides()) return in;
  if (real_ok) {
    in.fake = at::empty_like(real).copy_(fake);
  } else if (fake_ok) {
    in.real = at::empty_like(fake).copy_(real);
  } else {
    in.real = real.contiguous();
    in.fake = fake.contiguous();
  }
  return in;
}

GradPenaltyInputs check_grad_penalty_args(const at::Tensor& grads, double center,
                                          c10::string_view reduction, const char* op) {
  check_batched_float(grads, op, "grads");
  TORCH_CHECK_VALUE(std::isfinite(center) && center >= 0, op,
                    ": center must be a finite number >= 0, got ", center);
  const Reduction red = parse_reduction(reduction, op);
  const int64_t batch = grads.size(0);
  TORCH_CHECK_VALUE(batch > 0 || red != Reduction::Mean, op,
                    ": grads has batch size 0; the mean over an empty batch is undefined (use "
                    "reduction='sum' or 'none')");
  return {is_sample_blocked(grads) ? grads : grads.contiguous(), batch,
          batch ? grads.numel() / batch : 0, red};
}

GradPenaltyBackwardInputs check_grad_penalty_backward_args(const at::Tensor& grad_out,
                                                           const at::Tensor& grads,
                                                           const at::Tensor& norms, double center,
                                                           c10::string_view reduction) {
  constexpr const char* op = "grad_penalty_backward";
  GradPenaltyBackwardInputs in{check_grad_penalty_args(grads, center, reduction, op), {}, {}};
  const int64_t batch = in.base.batch;
  const at::ScalarType acc = acc_dtype(grads.scalar_type());
  TORCH_CHECK_TYPE(grad_out.defined() && grad_out.layout() == at::kStrided &&
                       grad_out.scalar_type() == grads.scalar_type(),
                   op, ": grad_out must be a dense tensor with grads' dtype ", grads.scalar_type());
  if (in.base.reduction == Reduction::None) {
    TORCH_CHECK_VALUE(grad_out.dim() == 1 && grad_out.size(0) == batch, op, ": grad_out has shape ",
                      grad_out.sizes(), "; expected [", batch, "] for reduction='none'");
  } else {
    TORCH_CHECK_VALUE(grad_out.dim() == 0, op, ": grad_out has shape ", grad_out.sizes(),
                      "; expected a 0-d tensor for reduction='mean' or 'sum'");
  }
  TORCH_CHECK_VALUE(norms.defined() && norms.dim() == 1 && norms.size(0) == batch, op,
                    ": norms must have shape [", batch, "]");
  TORCH_CHECK_TYPE(norms.scalar_type() == acc, op, ": norms has dtype ", norms.scalar_type(),
                   "; expected ", acc, " (grad_penalty's second output)");
  check_same_device(grad_out, grads, op, "grad_out", "grads");
  check_same_device(norms, grads, op, "norms", "grads");
  in.grad_out = grad_out.to(acc).contiguous();
  in.norms = norms.contiguous();
  return in;
}

}  // namespace pygan
