// rmsprop_step_ on CUDA: torch.optim.RMSprop's step and the clamp, fused, one multi-tensor launch per
// (device, dtype). Each element of every tensor is read once and written once.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <map>
#include <utility>
#include <vector>

#include "cuda/multi_tensor_apply.cuh"
#include "rmsprop.h"

// Runtime flag -> compile-time constant (flash-attention's BOOL_SWITCH): each combination of the
// step's options gets its own kernel, so the WGAN case (no momentum, not centered, clip) pays for none
// of the others.
#define PYGAN_BOOL_SWITCH(COND, CONST_NAME, ...) \
  [&] {                                          \
    if (COND) {                                  \
      constexpr static bool CONST_NAME = true;   \
      return __VA_ARGS__();                      \
    } else {                                     \
      constexpr static bool CONST_NAME = false;  \
      return __VA_ARGS__();                      \
    }                                            \
  }()

namespace pygan {
namespace {

// A product rounded on its own, never fused into a following add. Used where torch's RMSprop computes
// the product in a separate kernel (so its result is rounded before the add), since nvcc would
// otherwise contract `a * b + c` into one fma and round once.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// torch's lerp (ATen/native/Lerp.h), the form Tensor.lerp_ uses.
template <typename T>
__device__ __forceinline__ T lerp(T self, T end, T weight) {
  return ::abs(weight) < T(0.5) ? self + weight * (end - self) : end - (end - self) * (T(1) - weight);
}

// NOTE: [Order of operations]
// The update follows torch.optim.RMSprop as it runs on CUDA (the foreach implementation, torch's
// default there), one torch op per line:
//   g = maximize ? -grad : grad;  if wd != 0: g = g + wd * p            (_foreach_neg, _foreach_add)
//   sq = sq * alpha;  sq = sq + (1 - alpha) * (g * g)                   (_foreach_mul_, _foreach_addcmul_)
//   centered: ga = lerp(ga, g, 1 - alpha);  avg = sqrt(sq - ga * ga) + eps
//   else:     avg = sqrt(sq) + eps
//   momentum: buf = buf * momentum;  buf = buf + g / avg;  p = p + (-lr) * buf
//   else:     p = p + (-lr) * (g / avg)                                 (_foreach_addcdiv_)
//   then the clamp to [clip.lo, clip.hi], NaN propagating as in torch.clamp.
// Scalars are converted to the op-math type as torch converts its Scalar arguments ((1 - alpha) and
// -lr computed in double first). Products that torch rounds before a following add (because they
// come from separate ops) use mul_rn; the rest is written as torch's kernels write it, so nvcc
// contracts it the same way. Half/bfloat16 compute in float and round once per stored tensor; float32
// and float64 aim to match torch's CUDA step bit for bit (that assumes torch's kernels contract as
// ours do; the CPU kernel follows torch's CPU, single-tensor forms a + s*x*y and a + s*x/y, so CPU and
// CUDA may differ in the last bit). IEEE division and sqrt (no fast-math flags).
//
// List order: written lists first (param, square_avg, [momentum_buffer], [grad_avg]), grad last.
template <typename scalar_t, bool kMomentum, bool kCentered, bool kWeightDecay, bool kMaximize,
          bool kClip>
struct RMSpropFunctor {
  using opmath_t = at::opmath_type<scalar_t>;
  static constexpr int kDepth = 3 + int(kMomentum) + int(kCentered);
  static constexpr int kNumOutputs = kDepth - 1;
  static constexpr int kGrad = kDepth - 1;

  opmath_t alpha, one_minus_alpha, eps, weight_decay, momentum, neg_lr, clip_lo, clip_hi;

  __device__ __forceinline__ void operator()(scalar_t (&v)[kDepth]) const {
    opmath_t p = static_cast<opmath_t>(v[0]);
    opmath_t sq = static_cast<opmath_t>(v[1]);
    opmath_t g = static_cast<opmath_t>(v[kGrad]);
    if constexpr (kMaximize) g = -g;
    if constexpr (kWeightDecay) g = g + weight_decay * p;

    sq = mul_rn(sq, alpha);
    sq = sq + one_minus_alpha * (g * g);
    v[1] = static_cast<scalar_t>(sq);

    opmath_t avg;
    if constexpr (kCentered) {
      constexpr int kGradAvg = 2 + int(kMomentum);
      opmath_t ga = lerp(static_cast<opmath_t>(v[kGradAvg]), g, one_minus_alpha);
      v[kGradAvg] = static_cast<scalar_t>(ga);
      avg = ::sqrt(sq - mul_rn(ga, ga)) + eps;  // addcmul(sq, ga, ga, value=-1), sqrt_, add_(eps)
    } else {
      avg = ::sqrt(sq) + eps;
    }

    if constexpr (kMomentum) {
      constexpr int kBuf = 2;
      opmath_t buf = mul_rn(static_cast<opmath_t>(v[kBuf]), momentum);
      buf = buf + g / avg;
      v[kBuf] = static_cast<scalar_t>(buf);
      p = p + neg_lr * buf;
    } else {
      p = p + neg_lr * (g / avg);
    }
    // Clamping before the rounding store equals rounding then clamping: the bounds are scalar_t
    // values and rounding is monotone.
    if constexpr (kClip) p = cuda::clamp_propagate_nan(p, clip_lo, clip_hi);
    v[0] = static_cast<scalar_t>(p);
  }
};

template <typename scalar_t>
void launch_rmsprop(const std::vector<std::vector<at::Tensor>>& lists, const RMSpropOptions& opt) {
  using opmath_t = at::opmath_type<scalar_t>;
  PYGAN_BOOL_SWITCH(opt.momentum > 0, kMomentum, [&] {
    PYGAN_BOOL_SWITCH(opt.centered, kCentered, [&] {
      PYGAN_BOOL_SWITCH(opt.weight_decay != 0, kWeightDecay, [&] {
        PYGAN_BOOL_SWITCH(opt.maximize, kMaximize, [&] {
          PYGAN_BOOL_SWITCH(opt.has_clip, kClip, [&] {
            using Op = RMSpropFunctor<scalar_t, kMomentum, kCentered, kWeightDecay, kMaximize, kClip>;
            const Op op{static_cast<opmath_t>(opt.alpha),
                        static_cast<opmath_t>(1.0 - opt.alpha),
                        static_cast<opmath_t>(opt.eps),
                        static_cast<opmath_t>(opt.weight_decay),
                        static_cast<opmath_t>(opt.momentum),
                        static_cast<opmath_t>(-opt.lr),
                        static_cast<opmath_t>(static_cast<scalar_t>(opt.clip.lo)),
                        static_cast<opmath_t>(static_cast<scalar_t>(opt.clip.hi))};
            cuda::multi_tensor_apply<Op::kDepth, scalar_t>(lists, op);
          });
        });
      });
    });
  });
}

void rmsprop_step_cuda(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                       at::TensorList momentum_buffers, at::TensorList grad_avgs, double lr,
                       double alpha, double eps, double weight_decay, double momentum, bool centered,
                       bool maximize, std::optional<double> clip_min,
                       std::optional<double> clip_max) {
  const RMSpropOptions opt =
      check_rmsprop_args(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                         weight_decay, momentum, centered, maximize, clip_min, clip_max);
  const bool use_momentum = opt.momentum > 0;

  // The dispatcher picks this kernel when any tensor is on CUDA; CPU parameters (with their state,
  // which check_rmsprop_args keeps on the parameter's device) go to the CPU kernel.
  std::vector<at::Tensor> cpu_lists[5];
  std::map<std::pair<c10::DeviceIndex, at::ScalarType>, std::vector<size_t>> groups;
  for (const auto i : c10::irange(params.size())) {
    const at::Tensor& p = params[i];
    if (p.is_cpu()) {
      cpu_lists[0].push_back(p);
      cpu_lists[1].push_back(grads[i]);
      cpu_lists[2].push_back(square_avgs[i]);
      if (use_momentum) cpu_lists[3].push_back(momentum_buffers[i]);
      if (opt.centered) cpu_lists[4].push_back(grad_avgs[i]);
      continue;
    }
    TORCH_CHECK_VALUE(p.is_cuda(), "rmsprop_step_: params[", i, "] is on ", p.device(),
                      "; expected CUDA or CPU tensors");
    if (p.numel() == 0) continue;
    groups[{p.get_device(), p.scalar_type()}].push_back(i);
  }
  // NOTE: [Temporaries first, launches after, CPU last]
  // So that a failure (out of memory for a temporary, a launch error) modifies nothing it can avoid:
  // every group's contiguous temporaries are made before any kernel runs, all kernels are launched
  // before any copy-back, and the CPU parameters (whose update cannot fail once the checks passed)
  // are updated last.
  struct Group {
    c10::DeviceIndex device;
    at::ScalarType dtype;
    std::vector<std::vector<at::Tensor>> lists;                // RMSpropFunctor's order
    std::vector<std::pair<at::Tensor, at::Tensor>> copy_back;  // (original, contiguous temporary)
  };
  std::vector<Group> prepared;
  prepared.reserve(groups.size());
  const int depth = 3 + int(use_momentum) + int(opt.centered);
  for (const auto& [key, indices] : groups) {
    const c10::cuda::CUDAGuard guard(key.first);
    Group group{key.first, key.second, std::vector<std::vector<at::Tensor>>(depth), {}};
    for (const size_t i : indices) {
      // Written lists first (param, square_avg, [momentum_buffer], [grad_avg]), grad last.
      std::vector<at::Tensor> tensors{params[i], square_avgs[i]};
      if (use_momentum) tensors.push_back(momentum_buffers[i]);
      if (opt.centered) tensors.push_back(grad_avgs[i]);
      tensors.push_back(grads[i]);
      if (!same_flat_layout(tensors)) {
        // A rare layout (a strided view, or state whose memory format differs from the parameter's):
        // run on contiguous temporaries and copy the mutated ones back after the launch, on the same
        // stream, so the copies are ordered after the kernel without a host sync.
        for (int d = 0; d < depth; ++d) {
          if (tensors[d].is_contiguous()) continue;
          at::Tensor temporary = tensors[d].contiguous();
          if (d < depth - 1) group.copy_back.emplace_back(tensors[d], temporary);
          tensors[d] = std::move(temporary);
        }
      }
      for (int d = 0; d < depth; ++d) group.lists[d].push_back(std::move(tensors[d]));
    }
    prepared.push_back(std::move(group));
  }
  for (const Group& group : prepared) {
    const c10::cuda::CUDAGuard guard(group.device);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, group.dtype, "pygan::rmsprop_step_",
                                    [&] { launch_rmsprop<scalar_t>(group.lists, opt); });
  }
  for (Group& group : prepared) {
    const c10::cuda::CUDAGuard guard(group.device);
    for (auto& [original, temporary] : group.copy_back) original.copy_(temporary);
  }
  if (!cpu_lists[0].empty()) {
    rmsprop_step_cpu_impl(cpu_lists[0], cpu_lists[1], cpu_lists[2], cpu_lists[3], cpu_lists[4], opt);
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) { m.impl("rmsprop_step_", rmsprop_step_cuda); }

}  // namespace pygan
