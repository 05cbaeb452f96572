// interpolate, grad_penalty and grad_penalty_backward on CPU, and their argument checks (shared with
// the CUDA kernels). Formulas and conventions: csrc/penalty.h.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "penalty.h"

namespace pygan {

// ---- Shared argument checks (declared in penalty.h; the CUDA kernels call them too). ----

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

namespace {

// NOTE: [Fixed pieces, deterministic sums]
// Each sample is cut into pieces of at most kPiece elements, the same cut whatever the thread count;
// threads take whole pieces, each piece's sum is formed in a fixed order, and the pieces of a sample
// are added in order afterwards. So norms are bitwise reproducible across runs and thread counts,
// while a batch of a few huge samples (B = 1, 10M elements) still uses every thread.
constexpr int64_t kPiece = 16384;
// About 32K elements per thread at least: less costs more to hand out than to compute.
constexpr int64_t kMinElementsPerThread = 32768;

struct Pieces {
  int64_t per_sample;  // pieces per sample (at least 1 when per_sample elements > 0)
  int64_t total;
  int64_t grain;  // in pieces
};

Pieces make_pieces(int64_t batch, int64_t per_sample) {
  Pieces p;
  p.per_sample = per_sample > 0 ? (per_sample + kPiece - 1) / kPiece : 0;
  p.total = batch * p.per_sample;
  const int64_t piece_len = std::min(per_sample, kPiece);
  p.grain = std::max<int64_t>(1, kMinElementsPerThread / std::max<int64_t>(piece_len, 1));
  return p;
}

// Calls fn(sample, begin, end) for every piece [begin, end) of every sample, in parallel.
template <typename Fn>
void for_each_piece(int64_t batch, int64_t per_sample, const Fn& fn) {
  const Pieces pieces = make_pieces(batch, per_sample);
  if (pieces.total == 0) return;
  at::parallel_for(0, pieces.total, pieces.grain, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const int64_t sample = k / pieces.per_sample;
      const int64_t begin = (k % pieces.per_sample) * kPiece;
      fn(k, sample, begin, std::min(begin + kPiece, per_sample));
    }
  });
}

// Sum of squares of n elements, accumulated in acc_t (see penalty.h) in a fixed order.
template <typename scalar_t, typename acc_t>
acc_t sum_squares(const scalar_t* x, int64_t n) {
  int64_t i = 0;
  acc_t total = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {
    // float32 into float64: 16 independent lanes that the compiler turns into vcvtps2pd + FMA (ATen's
    // Vectorized has no float-to-double conversion).
    constexpr int kLanes = 16;
    double acc[kLanes] = {};
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const double v = x[i + j];
        acc[j] += v * v;
      }
    }
    for (int j = 0; j < kLanes; ++j) total += acc[j];
  } else if constexpr (std::is_same_v<scalar_t, double>) {
    using Vec = at::vec::Vectorized<double>;
    Vec a0(0.0), a1(0.0);
    for (; i + 2 * Vec::size() <= n; i += 2 * Vec::size()) {
      const Vec v0 = Vec::loadu(x + i), v1 = Vec::loadu(x + i + Vec::size());
      a0 = at::vec::fmadd(v0, v0, a0);
      a1 = at::vec::fmadd(v1, v1, a1);
    }
    total = at::vec::vec_reduce_all<double>([](Vec a, Vec b) { return a + b; }, a0 + a1);
  } else {  // float16 / bfloat16 into float32
    using Vec = at::vec::Vectorized<scalar_t>;
    using fVec = at::vec::Vectorized<float>;
    fVec a0(0.0f), a1(0.0f);
    for (; i + Vec::size() <= n; i += Vec::size()) {
      auto [v0, v1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(x + i));
      a0 = at::vec::fmadd(v0, v0, a0);
      a1 = at::vec::fmadd(v1, v1, a1);
    }
    total = at::vec::vec_reduce_all<float>([](fVec a, fVec b) { return a + b; }, a0 + a1);
  }
  for (; i < n; ++i) {
    const acc_t v = static_cast<acc_t>(x[i]);
    total += v * v;
  }
  return total;
}

// out[k] = w * x[k] for n elements; w in opmath (float for 16-bit and float32, double for float64).
template <typename scalar_t, typename opmath_t>
void scale_run(const scalar_t* x, scalar_t* out, int64_t n, opmath_t w) {
  int64_t i = 0;
  using Vec = at::vec::Vectorized<scalar_t>;
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    const Vec wv(w);
    for (; i + Vec::size() <= n; i += Vec::size()) (wv * Vec::loadu(x + i)).store(out + i);
  } else {
    using fVec = at::vec::Vectorized<float>;
    const fVec wv(w);
    for (; i + Vec::size() <= n; i += Vec::size()) {
      auto [a, b] = at::vec::convert_to_float<scalar_t>(Vec::loadu(x + i));
      at::vec::convert_from_float<scalar_t>(wv * a, wv * b).store(out + i);
    }
  }
  for (; i < n; ++i) out[i] = static_cast<scalar_t>(w * static_cast<opmath_t>(x[i]));
}

// out[k] = a * r[k] + (1 - a) * f[k] for n elements, in opmath, rounded once.
template <typename scalar_t, typename opmath_t>
void interpolate_run(const scalar_t* r, const scalar_t* f, scalar_t* out, int64_t n, opmath_t a) {
  const opmath_t b = opmath_t(1) - a;
  int64_t i = 0;
  using Vec = at::vec::Vectorized<scalar_t>;
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    const Vec av(a), bv(b);
    for (; i + Vec::size() <= n; i += Vec::size()) {
      (av * Vec::loadu(r + i) + bv * Vec::loadu(f + i)).store(out + i);
    }
  } else {
    using fVec = at::vec::Vectorized<float>;
    const fVec av(a), bv(b);
    for (; i + Vec::size() <= n; i += Vec::size()) {
      auto [r0, r1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(r + i));
      auto [f0, f1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(f + i));
      at::vec::convert_from_float<scalar_t>(av * r0 + bv * f0, av * r1 + bv * f1).store(out + i);
    }
  }
  for (; i < n; ++i) {
    out[i] = static_cast<scalar_t>(a * static_cast<opmath_t>(r[i]) + b * static_cast<opmath_t>(f[i]));
  }
}

void check_cpu(const at::Tensor& t, const char* op, const char* arg) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), op, ": ", arg, " is on ", t.device(),
                    "; the CPU kernel takes CPU tensors only");
}

at::Tensor interpolate_cpu(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  const InterpolateInputs in = check_interpolate_args(real, fake, alpha);
  check_cpu(real, "interpolate", "real");
  at::Tensor out = at::empty_like(in.real);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.real.scalar_type(), "pygan::interpolate", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* r = in.real.const_data_ptr<scalar_t>();
    const scalar_t* f = in.fake.const_data_ptr<scalar_t>();
    const scalar_t* a = in.alpha.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t k_per = in.per_sample;
    for_each_piece(in.batch, k_per, [&](int64_t, int64_t i, int64_t begin, int64_t end) {
      const int64_t off = i * k_per + begin;
      interpolate_run(r + off, f + off, o + off, end - begin, static_cast<opmath_t>(a[i]));
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_cpu(const at::Tensor& grads, double center,
                                                    bool one_sided, c10::string_view reduction) {
  const GradPenaltyInputs in = check_grad_penalty_args(grads, center, reduction, "grad_penalty");
  check_cpu(grads, "grad_penalty", "grads");
  const at::ScalarType dtype = grads.scalar_type();
  at::Tensor norms = at::empty({in.batch}, grads.options().dtype(acc_dtype(dtype)));
  at::Tensor penalty = in.reduction == Reduction::None ? at::empty({in.batch}, grads.options())
                                                       : at::empty({}, grads.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "pygan::grad_penalty", [&] {
    using acc_t = acc_type<scalar_t>;
    const scalar_t* g = in.grads.const_data_ptr<scalar_t>();
    const int64_t k_per = in.per_sample;
    const Pieces pieces = make_pieces(in.batch, k_per);
    std::vector<acc_t> partial(pieces.total);
    for_each_piece(in.batch, k_per, [&](int64_t piece, int64_t i, int64_t begin, int64_t end) {
      partial[piece] = sum_squares<scalar_t, acc_t>(g + i * k_per + begin, end - begin);
    });
    acc_t* n_out = norms.mutable_data_ptr<acc_t>();
    scalar_t* p_out = penalty.mutable_data_ptr<scalar_t>();
    const acc_t c = static_cast<acc_t>(center);
    acc_t total = 0;
    for (int64_t i = 0; i < in.batch; ++i) {
      acc_t s = 0;
      for (int64_t k = 0; k < pieces.per_sample; ++k) s += partial[i * pieces.per_sample + k];
      const acc_t n = std::sqrt(s);
      n_out[i] = n;
      const acc_t p = penalty_value(s, n, c, one_sided);
      if (in.reduction == Reduction::None) {
        p_out[i] = static_cast<scalar_t>(p);
      } else {
        total += p;
      }
    }
    if (in.reduction == Reduction::Mean) total /= static_cast<acc_t>(in.batch);
    if (in.reduction != Reduction::None) *p_out = static_cast<scalar_t>(total);
  });
  return {penalty, norms};
}

at::Tensor grad_penalty_backward_cpu(const at::Tensor& grad_out, const at::Tensor& grads,
                                     const at::Tensor& norms, double center, bool one_sided,
                                     c10::string_view reduction) {
  const GradPenaltyBackwardInputs in =
      check_grad_penalty_backward_args(grad_out, grads, norms, center, reduction);
  check_cpu(grads, "grad_penalty_backward", "grads");
  const GradPenaltyInputs& base = in.base;
  at::Tensor out = at::empty_like(base.grads);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "pygan::grad_penalty_backward", [&] {
    using acc_t = acc_type<scalar_t>;
    using opmath_t = at::opmath_type<scalar_t>;
    const acc_t* go = in.grad_out.const_data_ptr<acc_t>();
    const acc_t* n = in.norms.const_data_ptr<acc_t>();
    const acc_t scale = base.reduction == Reduction::Mean ? acc_t(1) / static_cast<acc_t>(base.batch) : acc_t(1);
    const acc_t c = static_cast<acc_t>(center);
    std::vector<opmath_t> w(base.batch);
    for (int64_t i = 0; i < base.batch; ++i) {
      const acc_t go_i = base.reduction == Reduction::None ? go[i] : go[0];
      w[i] = static_cast<opmath_t>(scale * go_i * penalty_slope(n[i], c, one_sided));
    }
    const scalar_t* g = base.grads.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t k_per = base.per_sample;
    for_each_piece(base.batch, k_per, [&](int64_t, int64_t i, int64_t begin, int64_t end) {
      const int64_t off = i * k_per + begin;
      scale_run<scalar_t, opmath_t>(g + off, o + off, end - begin, w[i]);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("interpolate", interpolate_cpu);
  m.impl("grad_penalty", grad_penalty_cpu);
  m.impl("grad_penalty_backward", grad_penalty_backward_cpu);
}

}  // namespace pygan
