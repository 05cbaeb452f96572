// interpolate, grad_penalty and grad_penalty_backward on CPU (the argument checks are in
// csrc/penalty.cpp). Formulas and conventions: csrc/penalty.h.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "penalty.h"

namespace pygan {

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

// NOTE: [Tiny norms]
// Squares of elements below about sqrt(min normal) of acc_t (1e-154 in float64, 1e-19 in float32,
// which accumulates float16/bfloat16) underflow, so a sample of such gradients would get norm 0 and
// the zero-norm slope 0 where the true penalty's slope is 2(n - c)/n. A sample whose sum of squares
// falls below min / epsilon (where the sum has lost digits) is summed again scaled by its largest
// element: ||g|| = m * sqrt(sum (g / m)^2), exact to rounding, as torch's norm is. Serial and
// deterministic; it runs only for such samples (and all-zero ones, for which it returns 0).
template <typename acc_t>
constexpr acc_t tiny_sum_squares() {
  return std::numeric_limits<acc_t>::min() / std::numeric_limits<acc_t>::epsilon();
}

template <typename scalar_t, typename acc_t>
acc_t scaled_norm(const scalar_t* x, int64_t n) {
  acc_t biggest = 0;
  for (int64_t i = 0; i < n; ++i) biggest = std::max(biggest, std::abs(static_cast<acc_t>(x[i])));
  if (!(biggest > acc_t(0))) return biggest;  // all zeros (or a NaN, which the caller's sum kept)
  acc_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const acc_t v = static_cast<acc_t>(x[i]) / biggest;
    total += v * v;
  }
  return biggest * std::sqrt(total);
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

// fma(x, y, z) in the math type, always one rounding: std::fma for scalars, ATen's fmadd for vectors
// where the build has a hardware FMA (AVX2 / AVX512); the portable build's Vectorized::fmadd is a
// plain multiply and add (two roundings), so there the vector loop is skipped and std::fma does it all.
#if defined(CPU_CAPABILITY_AVX2) || defined(CPU_CAPABILITY_AVX512)
constexpr bool kVectorFma = true;
#else
constexpr bool kVectorFma = false;
#endif

// NOTE: [interpolate's rounding]
// out[k] = fma(a, r[k], (1 - a) * f[k]) in opmath (float32 for 16-bit types): 1 - a and the product
// (1 - a) * f[k] are rounded, then the fma rounds once; 16-bit outputs are rounded once more, to their
// type. The CUDA kernel evaluates the same expression (csrc/cuda/penalty_cuda.cu, InterpolateOp), so
// both backends give the same bits; the fma is written out rather than left to the compiler's
// contraction, which differs between compilers, flags and ISAs.
template <typename scalar_t, typename opmath_t>
void interpolate_run(const scalar_t* r, const scalar_t* f, scalar_t* out, int64_t n, opmath_t a) {
  const opmath_t b = opmath_t(1) - a;
  int64_t i = 0;
  using Vec = at::vec::Vectorized<scalar_t>;
  if constexpr (!kVectorFma) {
    // the scalar loop below does every element
  } else if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    const Vec av(a), bv(b);
    for (; i + Vec::size() <= n; i += Vec::size()) {
      at::vec::fmadd(av, Vec::loadu(r + i), bv * Vec::loadu(f + i)).store(out + i);
    }
  } else {
    using fVec = at::vec::Vectorized<float>;
    const fVec av(a), bv(b);
    for (; i + Vec::size() <= n; i += Vec::size()) {
      auto [r0, r1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(r + i));
      auto [f0, f1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(f + i));
      at::vec::convert_from_float<scalar_t>(at::vec::fmadd(av, r0, bv * f0),
                                            at::vec::fmadd(av, r1, bv * f1)).store(out + i);
    }
  }
  for (; i < n; ++i) {
    const opmath_t bf = b * static_cast<opmath_t>(f[i]);
    out[i] = static_cast<scalar_t>(std::fma(a, static_cast<opmath_t>(r[i]), bf));
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
      acc_t n = std::sqrt(s);
      if (s < tiny_sum_squares<acc_t>()) {  // NOTE: [Tiny norms]
        n = scaled_norm<scalar_t, acc_t>(g + i * k_per, k_per);
        s = n * n;
      }
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
    std::vector<acc_t> wide(base.batch);
    std::vector<opmath_t> w(base.batch);
    for (int64_t i = 0; i < base.batch; ++i) {
      const acc_t go_i = base.reduction == Reduction::None ? go[i] : go[0];
      wide[i] = scale * go_i * penalty_slope(n[i], c, one_sided);
      w[i] = static_cast<opmath_t>(wide[i]);
    }
    const scalar_t* g = base.grads.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t k_per = base.per_sample;
    for_each_piece(base.batch, k_per, [&](int64_t, int64_t i, int64_t begin, int64_t end) {
      const int64_t off = i * k_per + begin;
      if (std::isfinite(wide[i]) && !std::isfinite(w[i])) {
        // A slope beyond opmath's range (a float32 sample of denormal norm: 2/n overflows float):
        // the product stays in acc_t, where it is finite, and is rounded once (NOTE: [Tiny norms]).
        for (int64_t k = off; k < off + (end - begin); ++k) {
          o[k] = static_cast<scalar_t>(wide[i] * static_cast<acc_t>(g[k]));
        }
        return;
      }
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
