// The extension's Python module: fast eager entry points into the registered ops.
//
// NOTE: [Why a second entry point]
// torch.ops.pygan.clip_(list, ...) parses its arguments generically against the schema, which costs
// about 1.5 us for a 10-tensor list: as much as clamping a small critic. These functions take the
// list through pybind11's tensor caster and call the very same dispatcher op (autograd kernel,
// argument checks, CPU/CUDA kernels), so behaviour is identical and only the parsing is cheaper.
// pygan.ops uses them in eager mode and torch.ops.pygan.* under torch.compile.
#include <torch/extension.h>

#include "emd_binding.h"
#include "op_handles.h"

#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace {

using TensorVector = std::vector<at::Tensor>;

void clip_(const TensorVector& tensors, std::optional<double> min, std::optional<double> max) {
  pygan::clip_op().call(tensors, min, max);
}

void rmsprop_step_(const TensorVector& params, const TensorVector& grads,
                   const TensorVector& square_avgs, const TensorVector& momentum_buffers,
                   const TensorVector& grad_avgs, double lr, double alpha, double eps,
                   double weight_decay, double momentum, bool centered, bool maximize,
                   std::optional<double> clip_min, std::optional<double> clip_max) {
  pygan::rmsprop_step_op().call(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha,
                                eps, weight_decay, momentum, centered, maximize, clip_min, clip_max);
}

// The penalty only (the op's second output, the per-sample norms, is for its backward).
at::Tensor grad_penalty(const at::Tensor& grads, double center, bool one_sided,
                        const std::string& reduction) {
  return std::get<0>(pygan::grad_penalty_op().call(grads, center, one_sided, reduction));
}

at::Tensor interpolate(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  return pygan::interpolate_op().call(real, fake, alpha);
}

// Adds 1 to each optimizer step counter (torch.optim keeps one 0-d tensor per parameter).
// torch._foreach_add_ on CPU scalars dispatches once per tensor (about 1.3 us each); a plain CPU
// float/double scalar is incremented in place here. Anything else (a tensor with extra dispatch keys,
// e.g. a fake or functional tensor, or one on a GPU) takes the ordinary add_.
void increment_(const TensorVector& steps) {
  static const c10::DispatchKeySet plain_cpu = at::empty({}, at::kFloat).key_set();
  for (const auto& t : steps) {
    if (t.key_set() == plain_cpu && t.numel() == 1 && !t.requires_grad()) {
      if (t.scalar_type() == at::kFloat) {
        *t.data_ptr<float>() += 1.0f;
        t.unsafeGetTensorImpl()->bump_version();
        continue;
      }
      if (t.scalar_type() == at::kDouble) {
        *t.data_ptr<double>() += 1.0;
        t.unsafeGetTensorImpl()->bump_version();
        continue;
      }
    }
    at::NoGradGuard no_grad;
    const_cast<at::Tensor&>(t).add_(1);
  }
}

using EmdTuple = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                            at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

EmdTuple as_tuple(const pygan::EmdResult& r) {
  return {r.cost, r.u, r.v, r.status, r.iterations, r.rounds, r.offsets, r.rows, r.cols, r.values, r.certificate};
}

EmdTuple emd_dense(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M, int64_t max_iter,
                   const at::Tensor& init_u, const at::Tensor& init_v, int64_t threads) {
  return as_tuple(pygan::emd_dense(a, b, M, max_iter, init_u, init_v, threads));
}

EmdTuple emd_sparse(const at::Tensor& a, const at::Tensor& b, const at::Tensor& rows, const at::Tensor& cols,
                    const at::Tensor& costs, int64_t max_iter) {
  return as_tuple(pygan::emd_sparse(a, b, rows, cols, costs, max_iter));
}

EmdTuple emd_points(const at::Tensor& a, const at::Tensor& b, const at::Tensor& x, const at::Tensor& y,
                    int64_t metric, double p, int64_t max_iter) {
  return as_tuple(pygan::emd_points(a, b, x, y, metric, p, max_iter));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> emd_1d(
    const at::Tensor& x, const at::Tensor& y, const at::Tensor& wx, const at::Tensor& wy, double p, bool sorted,
    bool want_plan) {
  auto r = pygan::emd_1d(x, y, wx, wy, p, sorted, want_plan);
  return {r.cost, r.offsets, r.rows, r.cols, r.values};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "pygan's compiled ops (registered as torch.ops.pygan.*) and their fast eager entry points";
  // The GIL is released while a kernel runs, as torch's own ops do.
  m.def("clip_", &clip_, "torch.ops.pygan.clip_ without the generic argument parsing",
        py::call_guard<py::gil_scoped_release>());
  m.def("rmsprop_step_", &rmsprop_step_,
        "torch.ops.pygan.rmsprop_step_ without the generic argument parsing",
        py::call_guard<py::gil_scoped_release>());
  m.def("grad_penalty", &grad_penalty,
        "torch.ops.pygan.grad_penalty(...)[0] without the generic argument parsing",
        py::call_guard<py::gil_scoped_release>());
  m.def("interpolate", &interpolate,
        "torch.ops.pygan.interpolate without the generic argument parsing",
        py::call_guard<py::gil_scoped_release>());
  m.def("increment_", &increment_, "add 1 to each optimizer step counter, in place");
  // The exact EMD solver (csrc/emd/). Returns (cost [B], u [B, n], v [B, m], status [B],
  // iterations [B], rounds [B], offsets [B + 1], rows, cols, values, certificate [B, 3]); pygan.ot
  // wraps it.
  m.def("emd_dense", &emd_dense, "exact EMD of B problems with dense costs [B, n, m] on `threads` of ATen's threads (0: all)",
        py::arg("a"), py::arg("b"), py::arg("M"), py::arg("max_iter"), py::arg("init_u"), py::arg("init_v"),
        py::arg("threads") = 0, py::call_guard<py::gil_scoped_release>());
  m.def("emd_sparse", &emd_sparse, "exact EMD over a list of arcs (sparse costs)",
        py::call_guard<py::gil_scoped_release>());
  m.def("emd_points", &emd_points, "exact EMD between point clouds, costs computed on the fly",
        py::call_guard<py::gil_scoped_release>());
  m.def("emd_dense_inputs_ok", &pygan::emd_dense_inputs_ok,
        "one pass over a dense problem's inputs: finite, non-negative, balanced (pygan.ot words the errors)",
        py::call_guard<py::gil_scoped_release>());
  m.def("emd2_single", &pygan::emd2_single,
        "(cost, status) of one dense problem; status -1: the inputs failed the checks (nothing solved)",
        py::call_guard<py::gil_scoped_release>());
  // Sorted 1-D matchings of B columns: (cost [B], offsets [B + 1], rows, cols, values).
  m.def("emd_1d", &emd_1d, "exact 1-D OT of B columns by sorting and a linear merge",
        py::call_guard<py::gil_scoped_release>());
}
