// A small multi-tensor launcher for pygan's fused element-wise updates (clip_, rmsprop_step_).
//
// In the style of torch's aten/src/ATen/native/cuda/MultiTensorApply.cuh and apex's multi_tensor_apply
// (not included: torch's internal header changes between releases): `depth` parallel lists of tensors
// are cut into chunks of kChunkSize elements, and one launch covers many (tensor, chunk) pairs, whose
// addresses travel in the kernel's argument buffer, so an optimizer step over hundreds of parameters
// costs a handful of launches instead of one per tensor.
#pragma once

#include <ATen/ATen.h>
#include <ATen/NumericUtils.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace pygan {
namespace cuda {

constexpr int kBytesPerAccess = 16;   // one 16-byte load or store per thread per list and step
constexpr int64_t kChunkSize = 65536;  // elements per block; a multiple of every ilp<T>()
constexpr int kBlockSize = 512;
constexpr int kMaxBlocksPerLaunch = 320;

// NOTE: [Kernel-argument budget]
// TensorListMetadata is passed by value as a kernel argument, and kernel arguments are limited to
// 4 KiB on the toolkits and GPUs torch supports without the large-argument path. The table below
// (torch's own) keeps depth * 8 * tensors + 8 * tensors + 5 * kMaxBlocksPerLaunch under ~3.1 KiB for
// every depth, leaving room for the functor's scalars (at most a few hundred bytes).
constexpr int max_tensors_per_launch(int depth) {
  return depth == 1 ? 110 : depth == 2 ? 64 : depth == 3 ? 48 : depth == 4 ? 36 : 30;
}

template <int depth>
struct TensorListMetadata {
  static_assert(depth >= 1 && depth <= 5, "multi_tensor_apply supports 1 to 5 lists");
  static constexpr int kMaxTensors = max_tensors_per_launch(depth);
  void* addresses[depth][kMaxTensors];
  int64_t numel[kMaxTensors];
  unsigned char block_to_tensor[kMaxBlocksPerLaunch];  // kMaxTensors <= 255
  int block_to_chunk[kMaxBlocksPerLaunch];              // chunk index within its tensor
};
static_assert(sizeof(TensorListMetadata<5>) + 256 <= 4096, "kernel arguments over 4 KiB");
static_assert(sizeof(TensorListMetadata<1>) + 256 <= 4096, "kernel arguments over 4 KiB");

// Elements per thread per step: one 16-byte access (8 for float16/bfloat16, 4 for float32, 2 for
// float64), so every dtype moves memory in 16-byte loads and stores.
template <typename T>
constexpr int ilp() {
  return kBytesPerAccess / static_cast<int>(sizeof(T));
}
static_assert(kChunkSize % 8 == 0, "kChunkSize must be a multiple of every ilp<T>()");

// N elements aligned as one vector, so that a load or store of sizeof(T) * N bytes (16 with
// N = ilp<T>()) is a single memory instruction.
template <typename T, int N>
struct alignas(sizeof(T) * N) AlignedVector {
  T val[N];
};

template <typename T>
__device__ __forceinline__ bool is_vector_aligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % kBytesPerAccess == 0;
}

// torch.clamp's CUDA expression (TensorCompare.cu, clamp_scalar_kernel_impl): NaN stays NaN, and
// otherwise min(max(x, lo), hi), so results match torch.clamp bit for bit. Callers convert the
// bounds to scalar_t first (as torch does) and compare in the op-math type.
template <typename T>
__device__ __forceinline__ T clamp_propagate_nan(T x, T lo, T hi) {
  return at::_isnan(x) ? x : ::min(::max(x, lo), hi);
}

// NOTE: [Functor contract]
// An Op is a trivially copyable struct with
//   static constexpr int kNumOutputs;                      // lists [0, kNumOutputs) are written back
//   __device__ void operator()(scalar_t (&v)[depth]) const; // one element of every list, in place
// Lists at index >= kNumOutputs are read only (put them last). The functor is a kernel argument too,
// so it carries its scalars by value (converted to the op-math type on the host).
template <int depth, typename scalar_t, typename Op>
__global__ void __launch_bounds__(kBlockSize)
    multi_tensor_apply_kernel(const TensorListMetadata<depth> meta, const Op op) {
  const int tensor = meta.block_to_tensor[blockIdx.x];
  const int64_t chunk_start = static_cast<int64_t>(meta.block_to_chunk[blockIdx.x]) * kChunkSize;
  const int64_t remaining = meta.numel[tensor] - chunk_start;
  const int n = static_cast<int>(remaining < kChunkSize ? remaining : kChunkSize);  // >= 1

  scalar_t* ptr[depth];
  bool aligned = true;
#pragma unroll
  for (int d = 0; d < depth; ++d) {
    ptr[d] = static_cast<scalar_t*>(meta.addresses[d][tensor]) + chunk_start;
    aligned = aligned && is_vector_aligned(ptr[d]);
  }

  // NOTE: [Vector fast path and tail]
  // chunk_start is a multiple of kILP, so a chunk is 16-byte aligned exactly when its tensor's base
  // pointers all are (true for every fresh allocation: the caching allocator hands out 512-byte
  // aligned blocks; a view whose storage offset is not a multiple of 16 bytes is not). Aligned chunks
  // run floor(n / kILP) vector steps and leave at most kILP - 1 elements to the scalar loop;
  // unaligned chunks run the scalar loop over everything (the lists of one parameter rarely share a
  // misalignment, so a scalar prologue would seldom help). Every element is read and written exactly
  // once either way.
  constexpr int kILP = ilp<scalar_t>();
  using Vec = AlignedVector<scalar_t, kILP>;
  const int n_vec = aligned ? n / kILP : 0;
  for (int i = threadIdx.x; i < n_vec; i += blockDim.x) {
    scalar_t r[depth][kILP];
#pragma unroll
    for (int d = 0; d < depth; ++d) {
      const Vec loaded = reinterpret_cast<const Vec*>(ptr[d])[i];
#pragma unroll
      for (int k = 0; k < kILP; ++k) r[d][k] = loaded.val[k];
    }
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      scalar_t v[depth];
#pragma unroll
      for (int d = 0; d < depth; ++d) v[d] = r[d][k];
      op(v);
#pragma unroll
      for (int d = 0; d < Op::kNumOutputs; ++d) r[d][k] = v[d];
    }
#pragma unroll
    for (int d = 0; d < Op::kNumOutputs; ++d) {
      Vec stored;
#pragma unroll
      for (int k = 0; k < kILP; ++k) stored.val[k] = r[d][k];
      reinterpret_cast<Vec*>(ptr[d])[i] = stored;
    }
  }
  for (int i = n_vec * kILP + threadIdx.x; i < n; i += blockDim.x) {
    scalar_t v[depth];
#pragma unroll
    for (int d = 0; d < depth; ++d) v[d] = ptr[d][i];
    op(v);
#pragma unroll
    for (int d = 0; d < Op::kNumOutputs; ++d) ptr[d][i] = v[d];
  }
}

// Applies `op` element-wise over `lists` (depth lists of equally long tensor lists) on the current
// CUDA device and stream; the caller holds the device guard.
//
// NOTE: [Caller's invariants]
// Every tensor has dtype scalar_t and lives on the current device; the tensors at one index of the
// lists have the same numel and the same strides and are each non-overlapping and dense
// (pygan::is_flat), so "element i from data_ptr()" is the same logical element in all of them.
// Empty tensors are skipped. Nothing here synchronises with the host (CUDA-graph capturable).
template <int depth, typename scalar_t, typename Op>
void multi_tensor_apply(const std::vector<std::vector<at::Tensor>>& lists, const Op& op) {
  static_assert(Op::kNumOutputs >= 1 && Op::kNumOutputs <= depth, "bad kNumOutputs");
  TORCH_INTERNAL_ASSERT(lists.size() == depth, "multi_tensor_apply: expected ", depth, " lists");
  const size_t n_tensors = lists[0].size();
  for (const auto& list : lists) TORCH_INTERNAL_ASSERT(list.size() == n_tensors);

  constexpr int kMaxTensors = TensorListMetadata<depth>::kMaxTensors;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  TensorListMetadata<depth> meta;
  int n_blocks = 0;  // (tensor, chunk) pairs in `meta` so far
  int slot = 0;      // tensors in `meta` so far

  auto launch = [&] {
    multi_tensor_apply_kernel<depth, scalar_t, Op><<<n_blocks, kBlockSize, 0, stream>>>(meta, op);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };

  for (size_t t = 0; t < n_tensors; ++t) {
    const int64_t numel = lists[0][t].numel();
    if (numel == 0) continue;
    for (int d = 0; d < depth; ++d) {
      TORCH_INTERNAL_ASSERT(lists[d][t].numel() == numel);
      meta.addresses[d][slot] = lists[d][t].data_ptr();
    }
    meta.numel[slot] = numel;
    ++slot;
    const int64_t n_chunks = (numel + kChunkSize - 1) / kChunkSize;
    TORCH_CHECK(n_chunks <= std::numeric_limits<int>::max(), "multi_tensor_apply: tensor too large");
    for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
      meta.block_to_tensor[n_blocks] = static_cast<unsigned char>(slot - 1);
      meta.block_to_chunk[n_blocks] = static_cast<int>(chunk);
      ++n_blocks;
      const bool last_chunk = chunk == n_chunks - 1;
      if (n_blocks == kMaxBlocksPerLaunch || (slot == kMaxTensors && last_chunk)) {
        launch();
        n_blocks = 0;
        if (last_chunk) {
          slot = 0;
        } else {
          // The current tensor has chunks left: it becomes slot 0 of the next launch. The kernel
          // argument was copied at launch, so rewriting `meta` now is safe.
          for (int d = 0; d < depth; ++d) meta.addresses[d][0] = meta.addresses[d][slot - 1];
          meta.numel[0] = numel;
          slot = 1;
        }
      }
    }
  }
  if (n_blocks > 0) launch();
}

}  // namespace cuda
}  // namespace pygan
