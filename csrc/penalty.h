// interpolate, grad_penalty and grad_penalty_backward: declarations shared by the argument checks
// (csrc/penalty.cpp), the CPU kernels (csrc/cpu/penalty_cpu.cpp) and the CUDA kernels
// (csrc/cuda/penalty_cuda.cu).
//
// Conventions (the same on every backend; pygan/reference.py spells them out in plain torch):
//   * The batch dimension is dim 0. A "sample" is one slice grads[i] / real[i], flattened over all
//     other dims; per_sample = numel / B elements.
//   * Kernels see sample-blocked tensors (is_sample_blocked): sample i occupies the contiguous run
//     [i * per_sample, (i + 1) * per_sample) from data_ptr(), elements in any order. Contiguous and
//     channels_last tensors qualify as they are; anything else is copied to contiguous first.
//   * Accumulation: float16/bfloat16 in float32, float32 and float64 in float64 (acc_type below), so a
//     float32 gradient with elements near 1e20 still has a finite norm, as torch's CPU norm does.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/string_view.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace pygan {

enum class Reduction : int { None = 0, Mean = 1, Sum = 2 };

// "none" | "mean" | "sum", else ValueError naming `op`.
Reduction parse_reduction(c10::string_view reduction, const char* op);

// True when sample i of `t` is the contiguous run [i * per_sample, (i + 1) * per_sample) from
// t.data_ptr() (elements in any order): t is non-overlapping and dense and stride(0) == per_sample.
bool is_sample_blocked(const at::Tensor& t);

// The accumulation dtype: float32 for float16/bfloat16, float64 for float32/float64.
at::ScalarType acc_dtype(at::ScalarType dtype);

// The same as a C++ type, for kernels dispatched on scalar_t (CPU and CUDA).
template <typename scalar_t>
using acc_type = std::conditional_t<std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>,
                                    double, float>;

// ---- interpolate(real, fake, alpha) -> alpha[i] * real[i] + (1 - alpha[i]) * fake[i] ----

struct InterpolateInputs {
  at::Tensor real;   // sample-blocked, same strides as fake
  at::Tensor fake;   // sample-blocked, same strides as real
  at::Tensor alpha;  // [B], contiguous, real's dtype
  int64_t batch;
  int64_t per_sample;
};

// Validates (TypeError / ValueError naming the argument): real and fake float16/bfloat16/float32/
// float64, strided, at least 1-D, equal shapes, dtypes and devices; alpha 1-D of size B with real's
// dtype and device. Returns the tensors the kernels read: real and fake as they are when both are
// sample-blocked with equal strides, else contiguous copies; alpha contiguous.
// The output is at::empty_like(inputs.real) (same strides), computed in at::opmath_type (float32 for
// 16-bit types) as fma(a, r, (1 - a) * f) on every backend (NOTE: [interpolate's rounding]).
InterpolateInputs check_interpolate_args(const at::Tensor& real, const at::Tensor& fake,
                                         const at::Tensor& alpha);

// ---- grad_penalty(grads, center, one_sided, reduction) -> (penalty, norms) ----
//   norms[i]   = ||grads[i]||_2, shape [B], dtype acc_dtype(grads.dtype)
//   p_i        = ||g_i||^2 (center == 0: no square root), else (||g_i|| - center)^2, or for one_sided
//                max(||g_i|| - center, 0)^2 (NaN propagates)
//   penalty    = p (reduction "none", shape [B]) | mean_i p_i | sum_i p_i (0-d); grads' dtype.
// ---- grad_penalty_backward(grad_out, grads, norms, center, one_sided, reduction) -> grad_grads ----
//   grad_grads[i] = w_i * grads[i], w_i = scale * grad_out_i * penalty_slope(norms[i], center, one_sided)
//   (grad_out_i = grad_out[i] for "none", the 0-d grad_out otherwise; scale = 1 / B for "mean", else 1).
//   Same shape as grads and the strides of the sample-blocked grads.

struct GradPenaltyInputs {
  at::Tensor grads;  // sample-blocked
  int64_t batch;
  int64_t per_sample;
  Reduction reduction;
};

// Validates grads (float, strided, at least 1-D; B = 0 only with reduction "none"), center (finite,
// >= 0) and reduction. Returns grads sample-blocked (a contiguous copy when it was not).
GradPenaltyInputs check_grad_penalty_args(const at::Tensor& grads, double center,
                                          c10::string_view reduction, const char* op);

// Additionally validates grad_out ([B] for "none", 0-d otherwise; grads' dtype and device) and norms
// ([B], acc_dtype, grads' device), both converted to acc_dtype and made contiguous in the result.
struct GradPenaltyBackwardInputs {
  GradPenaltyInputs base;
  at::Tensor grad_out;  // acc dtype, contiguous: [B] ("none") or 0-d
  at::Tensor norms;     // acc dtype, contiguous, [B]
};
GradPenaltyBackwardInputs check_grad_penalty_backward_args(const at::Tensor& grad_out,
                                                           const at::Tensor& grads,
                                                           const at::Tensor& norms, double center,
                                                           c10::string_view reduction);

// p_i from the sum of squares s_i and the norm n = sqrt(s_i).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t penalty_value(acc_t sum_sq, acc_t norm, acc_t center, bool one_sided) {
  if (center == acc_t(0)) return sum_sq;
  const acc_t d = norm - center;
  if (one_sided && !(d > acc_t(0)) && !(d != d)) return acc_t(0);  // relu, but NaN stays NaN
  return d * d;
}

// dp_i/d||g_i|| divided by ||g_i||, so that dp_i/dg_i = penalty_slope * g_i:
//   center == 0: 2 (p = ||g||^2, smooth everywhere);
//   ||g_i|| == 0 (center > 0): 0, the subgradient torch's norm backward also uses there (finite,
//     defined: the penalty has a cone-shaped kink at g = 0);
//   else 2 (n - c) / n, or for one_sided 2 max(n - c, 0) / n (NaN propagates).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t penalty_slope(acc_t norm, acc_t center, bool one_sided) {
  if (center == acc_t(0)) return acc_t(2);
  if (norm == acc_t(0)) return acc_t(0);
  const acc_t d = norm - center;
  if (one_sided && !(d > acc_t(0)) && !(d != d)) return acc_t(0);
  return acc_t(2) * d / norm;
}

}  // namespace pygan
