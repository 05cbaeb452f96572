// rmsprop_step_ on CPU: the fused, vectorised update (the argument checks are in csrc/rmsprop.cpp).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/irange.h>
#include <torch/library.h>

#include <cmath>
#include <map>

#include "rmsprop.h"
#include "segments.h"

namespace pygan {

namespace {

struct RMSpropSegment {
  void* param;
  const void* grad;
  void* square_avg;
  void* momentum_buffer;  // null unless momentum > 0
  void* grad_avg;         // null unless centered
  int64_t numel;
};

// The step's constants in the math type T (a scalar or an at::vec::Vectorized), converted from double
// exactly as torch's kernels convert their Scalar arguments.
template <typename T>
struct Coefficients {
  T alpha, one_minus_alpha, eps, weight_decay, momentum, neg_lr, lerp_weight, lo, hi;
  bool has_weight_decay, has_momentum, centered, maximize, small_lerp_weight;

  template <typename opmath_t>
  static Coefficients make(const RMSpropOptions& o, opmath_t lo, opmath_t hi) {
    const double w = 1.0 - o.alpha;  // torch: square_avg.addcmul_(g, g, value=1-alpha), lerp_(g, 1-alpha)
    // torch's lerp converts the weight to opmath_t first and forms `weight - 1` in opmath_t; with
    // 1 - alpha near 1 that rounding matters (grad_avg feeds the cancellation sq - grad_avg^2).
    const auto w_op = static_cast<opmath_t>(w);
    return {T(static_cast<opmath_t>(o.alpha)), T(w_op),
            T(static_cast<opmath_t>(o.eps)), T(static_cast<opmath_t>(o.weight_decay)),
            T(static_cast<opmath_t>(o.momentum)), T(static_cast<opmath_t>(-o.lr)),
            T(std::abs(w) < 0.5 ? w_op : w_op - opmath_t(1)), T(lo), T(hi),
            o.weight_decay != 0.0, o.momentum > 0.0, o.centered, o.maximize, std::abs(w) < 0.5};
  }
};

template <typename T>
inline T sqrt_(const T& x) { return x.sqrt(); }
inline float sqrt_(float x) { return std::sqrt(x); }
inline double sqrt_(double x) { return std::sqrt(x); }
template <typename T>
inline T fmadd_(const T& a, const T& b, const T& c) { return at::vec::fmadd(a, b, c); }
inline float fmadd_(float a, float b, float c) { return a * b + c; }
inline double fmadd_(double a, double b, double c) { return a * b + c; }
template <typename T>
inline T clamp_(const T& a, const T& lo, const T& hi) { return at::vec::minimum(at::vec::maximum(a, lo), hi); }
inline float clamp_(float a, float lo, float hi) { return std::min(std::max(a, lo), hi); }
inline double clamp_(double a, double lo, double hi) { return std::min(std::max(a, lo), hi); }

// NOTE: [Same update, same order as torch.optim.RMSprop]
// Each line is one of torch's _single_tensor_rmsprop calls, evaluated the way torch's CPU kernel for
// that call evaluates it (add with alpha and lerp are fmadd; addcmul/addcdiv are a + s*x*y and
// a + s*x/y), so float32/float64 results agree with torch to rounding. The difference: torch rounds
// float16/bfloat16 after every call, we keep the element in float32 and round once.
template <typename T>
inline void rmsprop_update(T& p, T g, T& sq, T& buf, T& ga, const Coefficients<T>& c) {
  if (c.maximize) g = g * T(-1);
  if (c.has_weight_decay) g = fmadd_(p, c.weight_decay, g);        // grad.add(param, alpha=wd)
  sq = sq * c.alpha;                                                // square_avg.mul_(alpha)
  sq = sq + c.one_minus_alpha * g * g;                              //   .addcmul_(g, g, value=1-alpha)
  T avg;
  if (c.centered) {
    ga = c.small_lerp_weight ? fmadd_(c.lerp_weight, g - ga, ga)    // grad_avg.lerp_(g, 1-alpha)
                             : fmadd_(c.lerp_weight, g - ga, g);
    avg = sqrt_(sq + T(-1) * ga * ga);                              // square_avg.addcmul(ga, ga, value=-1).sqrt_()
  } else {
    avg = sqrt_(sq);                                                // square_avg.sqrt()
  }
  avg = avg + c.eps;                                                // .add_(eps)
  if (c.has_momentum) {
    buf = buf * c.momentum;                                         // buf.mul_(momentum)
    buf = buf + T(1) * g / avg;                                     //   .addcdiv_(g, avg)
    p = fmadd_(buf, c.neg_lr, p);                                   // param.add_(buf, alpha=-lr)
  } else {
    p = p + c.neg_lr * g / avg;                                     // param.addcdiv_(g, avg, value=-lr)
  }
  p = clamp_(p, c.lo, c.hi);                                        // pygan: the WGAN clamp (+-inf: none)
}

template <typename scalar_t>
void rmsprop_run(const RMSpropSegment& s, int64_t begin, int64_t end, const RMSpropOptions& opt) {
  using opmath_t = at::opmath_type<scalar_t>;
  using Vec = at::vec::Vectorized<scalar_t>;
  using fVec = at::vec::Vectorized<opmath_t>;
  auto* p = static_cast<scalar_t*>(s.param);
  const auto* g = static_cast<const scalar_t*>(s.grad);
  auto* sq = static_cast<scalar_t*>(s.square_avg);
  auto* buf = static_cast<scalar_t*>(s.momentum_buffer);
  auto* ga = static_cast<scalar_t*>(s.grad_avg);
  // Bounds rounded to scalar_t first, as torch.clamp does, then held in the math type.
  const auto lo = static_cast<opmath_t>(static_cast<scalar_t>(opt.clip.lo));
  const auto hi = static_cast<opmath_t>(static_cast<scalar_t>(opt.clip.hi));
  const auto cv = Coefficients<fVec>::make(opt, lo, hi);
  const auto cs = Coefficients<opmath_t>::make(opt, lo, hi);
  const bool has_buf = buf != nullptr, has_ga = ga != nullptr;
  int64_t i = begin;
  if constexpr (std::is_same_v<scalar_t, opmath_t>) {
    for (; i + Vec::size() <= end; i += Vec::size()) {
      Vec vp = Vec::loadu(p + i), vsq = Vec::loadu(sq + i);
      Vec vbuf = has_buf ? Vec::loadu(buf + i) : Vec(0), vga = has_ga ? Vec::loadu(ga + i) : Vec(0);
      rmsprop_update(vp, Vec::loadu(g + i), vsq, vbuf, vga, cv);
      vp.store(p + i);
      vsq.store(sq + i);
      if (has_buf) vbuf.store(buf + i);
      if (has_ga) vga.store(ga + i);
    }
  } else {
    // float16/bfloat16: one Vec of scalar_t is two of float.
    const fVec zero(0);
    for (; i + Vec::size() <= end; i += Vec::size()) {
      auto [p0, p1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(p + i));
      auto [g0, g1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(g + i));
      auto [sq0, sq1] = at::vec::convert_to_float<scalar_t>(Vec::loadu(sq + i));
      fVec b0 = zero, b1 = zero, a0 = zero, a1 = zero;
      if (has_buf) std::tie(b0, b1) = at::vec::convert_to_float<scalar_t>(Vec::loadu(buf + i));
      if (has_ga) std::tie(a0, a1) = at::vec::convert_to_float<scalar_t>(Vec::loadu(ga + i));
      rmsprop_update(p0, g0, sq0, b0, a0, cv);
      rmsprop_update(p1, g1, sq1, b1, a1, cv);
      at::vec::convert_from_float<scalar_t>(p0, p1).store(p + i);
      at::vec::convert_from_float<scalar_t>(sq0, sq1).store(sq + i);
      if (has_buf) at::vec::convert_from_float<scalar_t>(b0, b1).store(buf + i);
      if (has_ga) at::vec::convert_from_float<scalar_t>(a0, a1).store(ga + i);
    }
  }
  for (; i < end; ++i) {
    opmath_t vp = p[i], vsq = sq[i], vbuf = has_buf ? opmath_t(buf[i]) : 0, vga = has_ga ? opmath_t(ga[i]) : 0;
    rmsprop_update(vp, static_cast<opmath_t>(g[i]), vsq, vbuf, vga, cs);
    p[i] = static_cast<scalar_t>(vp);
    sq[i] = static_cast<scalar_t>(vsq);
    if (has_buf) buf[i] = static_cast<scalar_t>(vbuf);
    if (has_ga) ga[i] = static_cast<scalar_t>(vga);
  }
}

}  // namespace

void rmsprop_step_cpu_impl(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                           at::TensorList momentum_buffers, at::TensorList grad_avgs,
                           const RMSpropOptions& opt) {
  std::map<at::ScalarType, std::vector<RMSpropSegment>> groups;
  // Parameters whose tensors do not share a flat layout run on contiguous copies, copied back after.
  std::vector<std::pair<at::Tensor, at::Tensor>> copy_back;  // (original, temporary)
  std::vector<at::Tensor> keep_alive;  // read-only temporaries (grads) the segments point into
  const at::Tensor none;
  for (const auto i : c10::irange(params.size())) {
    if (params[i].numel() == 0) continue;
    const at::Tensor& buf = opt.momentum > 0 ? momentum_buffers[i] : none;
    const at::Tensor& ga = opt.centered ? grad_avgs[i] : none;
    at::Tensor p = params[i], g = grads[i], sq = square_avgs[i], b = buf, a = ga;
    if (!same_flat_layout({p, g, sq, b, a})) {
      auto contiguous_copy = [&](const at::Tensor& t, bool mutated) {
        if (!t.defined() || t.is_contiguous()) return t;
        at::Tensor c = t.contiguous();
        if (mutated) copy_back.emplace_back(t, c);
        else keep_alive.push_back(c);
        return c;
      };
      p = contiguous_copy(p, true);
      g = contiguous_copy(g, false);
      sq = contiguous_copy(sq, true);
      b = contiguous_copy(b, true);
      a = contiguous_copy(a, true);
    }
    groups[p.scalar_type()].push_back({p.data_ptr(), g.const_data_ptr(), sq.data_ptr(),
                                       b.defined() ? b.data_ptr() : nullptr,
                                       a.defined() ? a.data_ptr() : nullptr, p.numel()});
  }
  for (const auto& [dtype, segments] : groups) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "pygan::rmsprop_step_", [&] {
      // About 10 flops and 16-40 bytes per element: a smaller grain than a plain copy.
      parallel_over_segments(segments, at::internal::GRAIN_SIZE / 4,
                             [&](const RMSpropSegment& s, int64_t begin, int64_t end) {
                               rmsprop_run<scalar_t>(s, begin, end, opt);
                             });
    });
  }
  for (auto& [original, temporary] : copy_back) const_cast<at::Tensor&>(original).copy_(temporary);
}

namespace {

void rmsprop_step_cpu(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                      at::TensorList momentum_buffers, at::TensorList grad_avgs, double lr, double alpha,
                      double eps, double weight_decay, double momentum, bool centered, bool maximize,
                      std::optional<double> clip_min, std::optional<double> clip_max) {
  const RMSpropOptions opt =
      check_rmsprop_args(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                         weight_decay, momentum, centered, maximize, clip_min, clip_max);
  for (const auto i : c10::irange(params.size())) {
    TORCH_CHECK_VALUE(params[i].device().is_cpu(), "rmsprop_step_: params[", i, "] is on ",
                      params[i].device(), "; the CPU kernel takes CPU tensors only");
  }
  rmsprop_step_cpu_impl(params, grads, square_avgs, momentum_buffers, grad_avgs, opt);
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) { m.impl("rmsprop_step_", rmsprop_step_cpu); }

}  // namespace pygan
