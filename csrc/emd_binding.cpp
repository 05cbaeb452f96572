// The thin torch binding of the EMD core (csrc/emd/): tensors in and out, ATen's thread pool.
//
// pygan/ot.py validates and converts everything (float64, contiguous, CPU) before calling these,
// so the checks here only guard against misuse of the binding itself. python.cpp exposes them with
// the GIL released.
#include "emd_binding.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "emd/emd.h"
#include "emd/sorted_1d.h"

namespace pygan {
namespace {

// How many of ATen's threads a call with the binding's `threads` argument uses (0: all of them).
int64_t thread_cap(int64_t threads) {
  const int64_t pool = at::get_num_threads();
  return threads > 0 ? std::min(threads, pool) : pool;
}

// The core's ParallelFor on ATen's pool, using at most thread_cap(threads) of its threads.
// The cap is applied here, per call, rather than with at::set_num_threads: that would change the
// process-wide setting every other torch op and Python thread sees, and it costs tens of
// microseconds each way (a 64 x 64 solve takes about 200). 1 gives the core's serial loop.
emd::ParallelFor aten_parallel_for(int64_t threads) {
  if (threads == 1) return {};
  return [threads](int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    const int64_t cap = thread_cap(threads);
    if (cap == at::get_num_threads()) {
      at::parallel_for(begin, end, grain, body);
      return;
    }
    // At most `cap` contiguous chunks of at least `grain` items, one pool task each.
    const int64_t count = end - begin;
    if (count <= 0) return;
    const int64_t chunks = std::min<int64_t>(cap, (count + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
    if (chunks <= 1) {
      body(begin, end);
      return;
    }
    at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) body(begin + count * c / chunks, begin + count * (c + 1) / chunks);
    });
  };
}

void check(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("pygan emd binding: ") + what);
}

void check_f64(const at::Tensor& t, int64_t dim, const char* what) {
  check(t.device().is_cpu() && t.scalar_type() == at::kDouble && t.is_contiguous() && t.dim() == dim,
        what);
}

// Packs solutions into tensors: per-problem cost/status/iterations/rounds, stacked duals and the
// plans' non-zeros concatenated, problem p's entries at [offsets[p], offsets[p + 1]).
EmdResult pack(std::vector<emd::Solution>& sols, int64_t n, int64_t m) {
  const int64_t B = static_cast<int64_t>(sols.size());
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto i64 = at::TensorOptions().dtype(at::kLong);
  EmdResult r;
  r.cost = at::empty({B}, f64);
  r.u = at::empty({B, n}, f64);
  r.v = at::empty({B, m}, f64);
  r.status = at::empty({B}, i64);
  r.iterations = at::empty({B}, i64);
  r.rounds = at::empty({B}, i64);
  r.offsets = at::empty({B + 1}, i64);
  int64_t nnz = 0;
  auto* off = r.offsets.data_ptr<int64_t>();
  for (int64_t p = 0; p < B; ++p) {
    off[p] = nnz;
    nnz += static_cast<int64_t>(sols[p].values.size());
  }
  off[B] = nnz;
  r.rows = at::empty({nnz}, i64);
  r.cols = at::empty({nnz}, i64);
  r.values = at::empty({nnz}, f64);
  r.certificate = at::empty({B, 3}, f64);
  for (int64_t p = 0; p < B; ++p) {
    auto& s = sols[p];
    r.cost.data_ptr<double>()[p] = s.cost;
    r.status.data_ptr<int64_t>()[p] = static_cast<int64_t>(s.status);
    r.iterations.data_ptr<int64_t>()[p] = s.iterations;
    r.rounds.data_ptr<int64_t>()[p] = s.rounds;
    std::copy(s.u.begin(), s.u.end(), r.u.data_ptr<double>() + p * n);
    std::copy(s.v.begin(), s.v.end(), r.v.data_ptr<double>() + p * m);
    std::copy(s.rows.begin(), s.rows.end(), r.rows.data_ptr<int64_t>() + off[p]);
    std::copy(s.cols.begin(), s.cols.end(), r.cols.data_ptr<int64_t>() + off[p]);
    std::copy(s.values.begin(), s.values.end(), r.values.data_ptr<double>() + off[p]);
    double* cert = r.certificate.data_ptr<double>() + 3 * p;
    cert[0] = s.primal_residual;
    cert[1] = s.dual_violation;
    cert[2] = s.duality_gap;
  }
  return r;
}

// The shapes of a dense batch: a [n] or [Ba, n], b [m] or [Bb, m], M [n, m] or [BM, n, m], each
// batch size 1 (shared by every problem: stride 0) or B. Passing the shared weights and a single
// problem's M unexpanded saves pygan.ot a copy and a reshape per call (a few microseconds of a
// 64 x 64 solve, and two [B, n] copies of a batch).
struct DenseBatch {
  int64_t B = 1, n = 0, m = 0, a_stride = 0, b_stride = 0, m_stride = 0;
};

DenseBatch dense_batch(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M) {
  for (const at::Tensor* t : {&a, &b, &M})
    check(t->device().is_cpu() && t->scalar_type() == at::kDouble && t->is_contiguous(),
          "a, b and M must be contiguous float64 CPU tensors");
  check(a.dim() == 1 || a.dim() == 2, "a must be [n] or [B, n]");
  check(b.dim() == 1 || b.dim() == 2, "b must be [m] or [B, m]");
  check(M.dim() == 2 || M.dim() == 3, "M must be [n, m] or [B, n, m]");
  DenseBatch d;
  d.n = M.size(-2), d.m = M.size(-1);
  check(a.size(-1) == d.n && b.size(-1) == d.m, "shapes disagree");
  const int64_t sizes[3] = {a.dim() == 2 ? a.size(0) : 1, b.dim() == 2 ? b.size(0) : 1,
                            M.dim() == 3 ? M.size(0) : 1};
  d.B = std::max({sizes[0], sizes[1], sizes[2]});
  for (int64_t s : sizes) check(s == 1 || s == d.B, "batch sizes disagree (each must be 1 or B)");
  d.a_stride = sizes[0] == 1 ? 0 : d.n;
  d.b_stride = sizes[1] == 1 ? 0 : d.m;
  d.m_stride = sizes[2] == 1 ? 0 : d.n * d.m;
  return d;
}

emd::Options make_options(int64_t max_iter) {
  emd::Options options;
  options.max_iter = max_iter;
  return options;
}

}  // namespace

EmdResult emd_dense(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M, int64_t max_iter,
                    const at::Tensor& init_u, const at::Tensor& init_v, int64_t threads) {
  check(threads >= 0, "threads must be >= 0 (0: all of ATen's threads)");
  const DenseBatch d = dense_batch(a, b, M);
  const int64_t B = d.B, n = d.n, m = d.m, m_stride = d.m_stride;
  const bool warm = init_u.numel() > 0;
  if (warm) {
    check_f64(init_u, 2, "init_u must be a contiguous float64 CPU tensor [B, n]");
    check_f64(init_v, 2, "init_v must be a contiguous float64 CPU tensor [B, m]");
    check(init_u.size(0) == B && init_u.size(1) == n && init_v.size(0) == B && init_v.size(1) == m,
          "warm-start shapes disagree");
  }
  std::vector<emd::Solution> sols(B);
  const double* pa = a.data_ptr<double>();
  const double* pb = b.data_ptr<double>();
  const double* pm = M.data_ptr<double>();
  const double* pu = warm ? init_u.data_ptr<double>() : nullptr;
  const double* pv = warm ? init_v.data_ptr<double>() : nullptr;
  auto options_for = [&](int64_t p) {
    emd::Options options = make_options(max_iter);
    if (warm) options.init_u = pu + p * n, options.init_v = pv + p * m;
    return options;
  };
  if (B == 1) {
    emd::Options options = options_for(0);
    options.parallel_for = aten_parallel_for(threads);
    emd::Costs costs;
    costs.matrix = pm;
    sols[0] = emd::solve(n, m, pa, pb, costs, options);
  } else {
    // Many problems, each solved serially on one thread. The threads take problems one at a time
    // from a shared counter rather than in fixed chunks: problems differ in cost (augmenting paths,
    // pivots), and with chunks the thread that drew the expensive ones (or that the OS
    // descheduled) finishes last while the other waits. Scratch (the assignment solver's
    // workspace) is per thread and reused across its problems. (Prefetching the next problem's
    // costs while solving one measured no gain: they are in cache already, or streamed in order.)
    std::exception_ptr error;
    std::mutex error_mutex;
    std::atomic<int64_t> next{0};
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(B, thread_cap(threads)));
    at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
      // Whatever sub-range this call got, it takes problems until none is left.
      for (int64_t p = next.fetch_add(1, std::memory_order_relaxed); p < B;
           p = next.fetch_add(1, std::memory_order_relaxed)) {
        try {
          emd::Costs costs;
          costs.matrix = pm + p * m_stride;
          sols[p] = emd::solve(n, m, pa + p * d.a_stride, pb + p * d.b_stride, costs, options_for(p));
        } catch (...) {
          std::lock_guard<std::mutex> guard(error_mutex);
          if (!error) error = std::current_exception();
        }
      }
    });
    if (error) std::rethrow_exception(error);
  }
  return pack(sols, n, m);
}

EmdResult emd_points(const at::Tensor& a, const at::Tensor& b, const at::Tensor& x, const at::Tensor& y,
                     int64_t metric, double p, int64_t max_iter) {
  check_f64(a, 1, "a must be a contiguous float64 CPU tensor [n]");
  check_f64(b, 1, "b must be a contiguous float64 CPU tensor [m]");
  check_f64(x, 2, "x must be a contiguous float64 CPU tensor [n, d]");
  check_f64(y, 2, "y must be a contiguous float64 CPU tensor [m, d]");
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  check(a.size(0) == n && b.size(0) == m && y.size(1) == d && d > 0, "shapes disagree");
  check(metric >= 0 && metric <= 2, "metric must be 0 (sqeuclidean), 1 (euclidean) or 2 (power)");
  emd::Costs costs;
  costs.x = x.data_ptr<double>();
  costs.y = y.data_ptr<double>();
  costs.dim = d;
  costs.metric = static_cast<emd::Metric>(metric);
  costs.p = p;
  emd::Options options = make_options(max_iter);
  options.parallel_for = aten_parallel_for(0);
  std::vector<emd::Solution> sols(1);
  sols[0] = emd::solve(n, m, a.data_ptr<double>(), b.data_ptr<double>(), costs, options);
  return pack(sols, n, m);
}

EmdResult emd_sparse(const at::Tensor& a, const at::Tensor& b, const at::Tensor& rows, const at::Tensor& cols,
                     const at::Tensor& costs, int64_t max_iter) {
  check_f64(a, 1, "a must be a contiguous float64 CPU tensor [n]");
  check_f64(b, 1, "b must be a contiguous float64 CPU tensor [m]");
  check_f64(costs, 1, "costs must be a contiguous float64 CPU tensor [k]");
  const int64_t n = a.size(0), m = b.size(0), k = costs.size(0);
  for (const at::Tensor* t : {&rows, &cols})
    check(t->device().is_cpu() && t->scalar_type() == at::kLong && t->is_contiguous() && t->dim() == 1 &&
              t->size(0) == k, "rows and cols must be contiguous int64 CPU tensors [k]");
  emd::ArcList arcs;
  arcs.count = k;
  arcs.rows = rows.data_ptr<int64_t>();
  arcs.cols = cols.data_ptr<int64_t>();
  arcs.costs = costs.data_ptr<double>();
  std::vector<emd::Solution> sols(1);
  sols[0] = emd::solve_sparse(n, m, a.data_ptr<double>(), b.data_ptr<double>(), arcs, make_options(max_iter));
  return pack(sols, n, m);
}

bool emd_dense_inputs_ok(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M, double mass_tol,
                         bool rescale) {
  const DenseBatch d = dense_batch(a, b, M);
  const int64_t B = d.B, n = d.n, m = d.m;
  // Finite costs: no exponent field all ones (inf or NaN). An integer OR-reduction vectorises
  // where a floating-point one may not be reordered.
  const auto* bits = reinterpret_cast<const uint64_t*>(M.data_ptr<double>());
  constexpr uint64_t exponent = 0x7ff0000000000000ULL;
  std::atomic<bool> finite{true};
  at::parallel_for(0, M.numel(), 1 << 16, [&](int64_t lo, int64_t hi) {
    uint64_t bad = 0;
    for (int64_t k = lo; k < hi; ++k) bad |= static_cast<uint64_t>((bits[k] & exponent) == exponent);
    if (bad) finite = false;
  });
  if (!finite) return false;
  auto totals = [](const double* w, int64_t size, double& total) {
    total = 0.0;
    for (int64_t k = 0; k < size; ++k) {
      if (!(w[k] >= 0.0) || !std::isfinite(w[k])) return false;
      total += w[k];
    }
    return total > 0.0 && std::isfinite(total);
  };
  const double* pa = a.data_ptr<double>();
  const double* pb = b.data_ptr<double>();
  for (int64_t p = 0; p < B; ++p) {
    double sa, sb;
    if (!totals(pa + p * d.a_stride, n, sa) || !totals(pb + p * d.b_stride, m, sb)) return false;
    if (!rescale && std::fabs(sa - sb) / std::max(sa, sb) > mass_tol) return false;
  }
  return true;
}

std::tuple<double, int64_t> emd2_single(const at::Tensor& a, const at::Tensor& b, const at::Tensor& M,
                                        double mass_tol, bool rescale, int64_t threads) {
  check(a.dim() == 1 && b.dim() == 1 && M.dim() == 2, "emd2_single takes a [n], b [m] and M [n, m]");
  check(threads >= 0, "threads must be >= 0 (0: all of ATen's threads)");
  if (!emd_dense_inputs_ok(a, b, M, mass_tol, rescale)) return {0.0, -1};
  emd::Options options = make_options(-1);
  options.parallel_for = aten_parallel_for(threads);
  emd::Costs costs;
  costs.matrix = M.data_ptr<double>();
  // The solve keeps its plan and duals (the certificate needs them); only the cost is returned.
  const emd::Solution sol = emd::solve(M.size(0), M.size(1), a.data_ptr<double>(), b.data_ptr<double>(), costs, options);
  return {sol.cost, static_cast<int64_t>(sol.status)};
}

Emd1dResult emd_1d(const at::Tensor& x, const at::Tensor& y, const at::Tensor& wx, const at::Tensor& wy,
                   double p, bool sorted, bool want_plan) {
  check_f64(x, 2, "x must be a contiguous float64 CPU tensor [B, n]");
  check_f64(y, 2, "y must be a contiguous float64 CPU tensor [B, m]");
  const int64_t B = x.size(0), n = x.size(1), m = y.size(1);
  check(y.size(0) == B && n > 0 && m > 0, "x and y must have the same B columns and n, m >= 1");
  check(std::isfinite(p) && p >= 1.0, "p must be finite and >= 1");
  const at::Tensor* weights[2] = {&wx, &wy};
  const int64_t sizes[2] = {n, m};
  int64_t w_stride[2] = {0, 0};
  for (int s = 0; s < 2; ++s) {
    const at::Tensor& w = *weights[s];
    if (w.numel() == 0) continue;
    check_f64(w, 2, "weights must be contiguous float64 CPU tensors [B or 1, size] or empty");
    check((w.size(0) == B || w.size(0) == 1) && w.size(1) == sizes[s], "weight shapes disagree");
    w_stride[s] = w.size(0) == 1 ? 0 : sizes[s];
  }
  const double* data[2] = {x.data_ptr<double>(), y.data_ptr<double>()};
  const double* wdata[2] = {wx.numel() ? wx.data_ptr<double>() : nullptr, wy.numel() ? wy.data_ptr<double>() : nullptr};
  // Sorting is the work: 2B independent sorts (so one big column still uses two threads), then B
  // linear merges.
  std::vector<emd::Sorted1d> sides(2 * B);
  std::vector<emd::Plan1d> plans(want_plan ? B : 0);
  auto cost = at::empty({B}, at::TensorOptions().dtype(at::kDouble));
  double* pc = cost.data_ptr<double>();
  // A grain of about 64K points per thread: below that, waking a second thread costs more than
  // the sort it would take over.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, std::min(n, m)));
  at::parallel_for(0, 2 * B, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t c = t / 2;
      const int s = static_cast<int>(t % 2);
      const double* w = wdata[s] ? wdata[s] + c * w_stride[s] : nullptr;
      emd::sort_1d(sizes[s], data[s] + c * sizes[s], w, sorted, want_plan, sides[t]);
    }
  });
  at::parallel_for(0, B, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      pc[c] = emd::merge_1d(sides[2 * c], sides[2 * c + 1], p, want_plan ? &plans[c] : nullptr);
      sides[2 * c] = emd::Sorted1d(), sides[2 * c + 1] = emd::Sorted1d();  // free as we go
    }
  });
  Emd1dResult r;
  r.cost = cost;
  auto i64 = at::TensorOptions().dtype(at::kLong);
  r.offsets = at::zeros({B + 1}, i64);
  int64_t* off = r.offsets.data_ptr<int64_t>();
  for (int64_t c = 0; c < static_cast<int64_t>(plans.size()); ++c)
    off[c + 1] = off[c] + static_cast<int64_t>(plans[c].values.size());
  const int64_t pieces = off[plans.size()];
  r.rows = at::empty({pieces}, i64);
  r.cols = at::empty({pieces}, i64);
  r.values = at::empty({pieces}, at::TensorOptions().dtype(at::kDouble));
  for (int64_t c = 0; c < static_cast<int64_t>(plans.size()); ++c) {
    std::copy(plans[c].rows.begin(), plans[c].rows.end(), r.rows.data_ptr<int64_t>() + off[c]);
    std::copy(plans[c].cols.begin(), plans[c].cols.end(), r.cols.data_ptr<int64_t>() + off[c]);
    std::copy(plans[c].values.begin(), plans[c].values.end(), r.values.data_ptr<double>() + off[c]);
  }
  return r;
}

}  // namespace pygan
