// clip_ on CUDA: one multi-tensor launch per (device, dtype) clamps every dense tensor in place.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <map>
#include <utility>
#include <vector>

#include "clip.h"
#include "cuda/multi_tensor_apply.cuh"

namespace pygan {
namespace {

template <typename scalar_t>
struct ClipFunctor {
  using opmath_t = at::opmath_type<scalar_t>;
  static constexpr int kNumOutputs = 1;
  opmath_t lo;
  opmath_t hi;

  __device__ __forceinline__ void operator()(scalar_t (&v)[1]) const {
    // An unclamped value converts back exactly; a clamped one is lo or hi, already scalar_t values.
    v[0] = static_cast<scalar_t>(cuda::clamp_propagate_nan(static_cast<opmath_t>(v[0]), lo, hi));
  }
};

void clip_cuda(at::TensorList tensors, std::optional<double> min, std::optional<double> max) {
  const ClipBounds bounds = check_clip_args(tensors, min, max);

  // The dispatcher picks this kernel when any tensor is on CUDA, so the list may also hold CPU tensors.
  std::vector<at::Tensor> cpu_tensors;
  std::vector<at::Tensor> strided_tensors;  // CUDA tensors that are not one flat run: torch's clamp_
  std::map<std::pair<c10::DeviceIndex, at::ScalarType>, std::vector<at::Tensor>> groups;
  for (const auto i : c10::irange(tensors.size())) {
    const at::Tensor& t = tensors[i];
    if (t.is_cpu()) {
      cpu_tensors.push_back(t);
      continue;
    }
    TORCH_CHECK_VALUE(t.is_cuda(), "clip_: tensors[", i, "] is on ", t.device(),
                      "; expected CUDA or CPU tensors");
    if (t.numel() == 0) continue;
    if (is_flat(t)) {
      groups[{t.get_device(), t.scalar_type()}].push_back(t);
    } else {
      strided_tensors.push_back(t);
    }
  }

  // NOTE: [CUDA first, CPU last]
  // Everything that can fail (a launch, a device guard) happens before any CPU tensor is written, so
  // an error leaves the CPU tensors untouched; the CPU part cannot fail once the checks passed.
  for (auto& [key, group] : groups) {
    const c10::cuda::CUDAGuard guard(key.first);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, key.second, "pygan::clip_", [&] {
      using opmath_t = at::opmath_type<scalar_t>;
      // Bounds are rounded to scalar_t first, as torch.clamp's Scalar::to<scalar_t>() does.
      const ClipFunctor<scalar_t> op{static_cast<opmath_t>(static_cast<scalar_t>(bounds.lo)),
                                     static_cast<opmath_t>(static_cast<scalar_t>(bounds.hi))};
      cuda::multi_tensor_apply<1, scalar_t>({group}, op);
    });
  }

  for (const auto& t : strided_tensors) {
    const c10::cuda::CUDAGuard guard(t.device());
    clamp_strided_(t, bounds);
  }

  if (!cpu_tensors.empty()) clip_cpu_impl(cpu_tensors, bounds);
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) { m.impl("clip_", clip_cuda); }

}  // namespace pygan
