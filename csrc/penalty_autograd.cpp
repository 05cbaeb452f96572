// Autograd kernels of interpolate, grad_penalty and grad_penalty_backward (C++ autograd Functions,
// registered for the Autograd key like torchvision's ops).
//
// NOTE: [Why the autograd formulas are in C++]
// The usual place is Python (torch.library.register_autograd). For these ops that
// measured about 40 us of Python per forward + backward on CPU (the autograd.Function glue and two
// Python callbacks), more than the whole fused epilogue for a [256, 2] gradient. A C++ Function costs
// a few microseconds, and torch.compile / AOTAutograd trace it the same way (the fake kernels are
// still registered from Python, in pygan.ops).
//
// Double backward: grad_penalty's backward calls the grad_penalty_backward op through the
// dispatcher, so under create_graph=True it lands in GradPenaltyBackwardFunction below, whose own
// backward is written in differentiable ATen ops. That is what gradgradcheck checks; training a
// WGAN-GP critic only needs the first-order backward (the double backward runs through the critic).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "op_handles.h"
#include "penalty.h"

namespace pygan {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Dims 1..dim-1, the per-sample dims a reduction over each sample sums (empty for a 1-D tensor).
std::vector<int64_t> sample_dims(const at::Tensor& t) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < t.dim(); ++d) dims.push_back(d);
  return dims;
}

// [B] -> [B, 1, ..., 1], broadcastable against a tensor of `dim` dims.
at::Tensor per_sample_view(const at::Tensor& v, int64_t dim) {
  std::vector<int64_t> shape(dim, 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

// Sum over each sample's elements: [B, ...] -> [B].
at::Tensor sum_per_sample(const at::Tensor& t) {
  return t.dim() == 1 ? t : t.sum(sample_dims(t));
}

class InterpolateFunction : public torch::autograd::Function<InterpolateFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& alpha) {
    ctx->save_for_backward({real, fake, alpha});
    at::AutoDispatchBelowADInplaceOrView guard;
    return interpolate_op().call(real, fake, alpha);
  }

  // out = a * real + (1 - a) * fake per sample: d/dreal = a, d/dfake = 1 - a,
  // d/da_i = sum over sample i of (real - fake) * grad.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &real = saved[0], &fake = saved[1], &alpha = saved[2];
    const at::Tensor& grad = grad_outputs[0];
    const at::Tensor a = per_sample_view(alpha, real.dim());
    at::Tensor grad_real, grad_fake, grad_alpha;
    if (ctx->needs_input_grad(0)) grad_real = grad * a;
    if (ctx->needs_input_grad(1)) grad_fake = grad * (1 - a);
    if (ctx->needs_input_grad(2)) grad_alpha = sum_per_sample(grad * (real - fake)).to(alpha.scalar_type());
    return {grad_real, grad_fake, grad_alpha};
  }
};

class GradPenaltyFunction : public torch::autograd::Function<GradPenaltyFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grads, double center,
                               bool one_sided, const std::string& reduction) {
    at::Tensor penalty, norms;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      std::tie(penalty, norms) = grad_penalty_op().call(grads, center, one_sided, reduction);
    }
    ctx->save_for_backward({grads, norms});
    ctx->saved_data["center"] = center;
    ctx->saved_data["one_sided"] = one_sided;
    ctx->saved_data["reduction"] = reduction;
    ctx->mark_non_differentiable({norms});
    return {penalty, norms};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad_grads;
    if (ctx->needs_input_grad(0)) {
      grad_grads = grad_penalty_backward_op().call(
          grad_outputs[0], saved[0], saved[1], ctx->saved_data["center"].toDouble(),
          ctx->saved_data["one_sided"].toBool(), ctx->saved_data["reduction"].toStringRef());
    }
    return {grad_grads, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// G = w ⊙ g with w_i = scale * go_i * h(n_i), n_i = ||g_i||, h = penalty_slope (penalty.h).
// For an upstream gradient v of G, with q_i = <v_i, g_i>:
//   dL/dgo_i = scale * h(n_i) * q_i                      (summed over i for "mean" / "sum")
//   dL/dg_i  = w_i v_i + scale * go_i * (h'(n_i) / n_i) * q_i * g_i
// where h(n) = 2 (n - c) / n, h'(n) / n = 2 c / n^3 (0 where h is defined as 0: n = 0, the inactive
// side of the one-sided penalty, center = 0 where h = 2). Norms are recomputed from grads with ATen
// ops, so this backward is itself differentiable.
class GradPenaltyBackwardFunction : public torch::autograd::Function<GradPenaltyBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_out, const at::Tensor& grads,
                            const at::Tensor& norms, double center, bool one_sided,
                            const std::string& reduction) {
    ctx->save_for_backward({grad_out, grads});
    ctx->saved_data["center"] = center;
    ctx->saved_data["one_sided"] = one_sided;
    ctx->saved_data["reduction"] = reduction;
    at::AutoDispatchBelowADInplaceOrView guard;
    return grad_penalty_backward_op().call(grad_out, grads, norms, center, one_sided, reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &grad_out = saved[0], &grads = saved[1];
    const double center = ctx->saved_data["center"].toDouble();
    const bool one_sided = ctx->saved_data["one_sided"].toBool();
    const Reduction red = parse_reduction(ctx->saved_data["reduction"].toStringRef(), "grad_penalty_backward");
    const at::ScalarType acc = acc_dtype(grads.scalar_type());
    const int64_t batch = grads.size(0);
    const int64_t dim = grads.dim();

    const at::Tensor g = grads.to(acc);
    const at::Tensor v = grad_outputs[0].to(acc);
    const at::Tensor n = dim == 1 ? g.abs() : at::linalg_vector_norm(g, 2, sample_dims(g));
    const at::Tensor q = sum_per_sample(v * g);
    const double scale = red == Reduction::Mean ? 1.0 / static_cast<double>(batch) : 1.0;
    const at::Tensor go = red == Reduction::None ? grad_out.to(acc) : grad_out.to(acc).expand({batch});

    at::Tensor h, k;  // h(n) and h'(n) / n
    if (center == 0) {
      h = at::full({batch}, 2.0, g.options());
      k = at::zeros({batch}, g.options());
    } else {
      const at::Tensor d = n - center;
      const at::Tensor zero = at::zeros({}, g.options());
      at::Tensor active = n != 0;  // NaN counts as active, so NaN propagates
      if (one_sided) active = active & ((d > 0) | d.isnan());
      const at::Tensor safe_n = at::where(n == 0, at::ones({}, g.options()), n);
      h = at::where(active, 2 * d / safe_n, zero);
      k = at::where(active, (2 * center) / safe_n.pow(3), zero);
    }

    at::Tensor grad_grad_out, grad_grads;
    if (ctx->needs_input_grad(0)) {
      at::Tensor t = scale * h * q;
      if (red != Reduction::None) t = t.sum();
      grad_grad_out = t.to(grad_out.scalar_type());
    }
    if (ctx->needs_input_grad(1)) {
      const at::Tensor w = per_sample_view(scale * go * h, dim);
      const at::Tensor extra = per_sample_view(scale * go * k * q, dim);
      grad_grads = (w * v + extra * g).to(grads.scalar_type());
    }
    return {grad_grad_out, grad_grads, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor interpolate_autograd(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  return InterpolateFunction::apply(real, fake, alpha);
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_autograd(const at::Tensor& grads, double center,
                                                         bool one_sided, c10::string_view reduction) {
  auto out = GradPenaltyFunction::apply(grads, center, one_sided, std::string(reduction));
  return {out[0], out[1]};
}

at::Tensor grad_penalty_backward_autograd(const at::Tensor& grad_out, const at::Tensor& grads,
                                          const at::Tensor& norms, double center, bool one_sided,
                                          c10::string_view reduction) {
  return GradPenaltyBackwardFunction::apply(grad_out, grads, norms, center, one_sided,
                                            std::string(reduction));
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("interpolate", interpolate_autograd);
  m.impl("grad_penalty", grad_penalty_autograd);
  m.impl("grad_penalty_backward", grad_penalty_backward_autograd);
}

}  // namespace pygan
