// interpolate, grad_penalty and grad_penalty_backward on CUDA. Formulas and conventions: csrc/penalty.h;
// the argument checks are shared with the CPU kernels (csrc/penalty.cpp).
//
// All three ops see sample-blocked tensors: sample i is the contiguous run [i * per_sample,
// (i + 1) * per_sample) from data_ptr(). So every kernel here walks flat memory and only needs to
// know which sample an element belongs to.
//
// Nothing here synchronises with the host (no .item(), no blocking copies): scratch buffers come from
// the caching allocator on the current stream, so the ops can be captured in CUDA graphs.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <initializer_list>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda/multi_tensor_apply.cuh"  // cuda::AlignedVector
#include "penalty.h"

namespace pygan {
namespace {

constexpr int kThreads = 256;  // every kernel's block size
constexpr int kWarps = kThreads / 32;
constexpr int kBytesPerAccess = 16;  // Hopper (and every GPU since Volta): one 16-byte load per thread

// Elements of scalar_t per 16-byte access: 8 for float16/bfloat16, 4 for float32, 2 for float64.
template <typename scalar_t>
constexpr int vec_width() {
  return kBytesPerAccess / static_cast<int>(sizeof(scalar_t));
}

// grad_penalty accumulates in acc_type (penalty.h): float64 for float32 inputs too. The float64 cost
// is hidden: the pass is memory-bound and H100's FP64 rate is half its FP32 rate.

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Bytes past the last 16-byte boundary (0 when aligned).
int misalignment(const void* p) { return static_cast<int>(reinterpret_cast<uintptr_t>(p) % kBytesPerAccess); }

// Elements of scalar_t before the first 16-byte boundary at or after p (0 when p is aligned), at most
// n. Tensor data is always aligned to its element size, so this is a whole number of elements.
template <typename scalar_t>
__host__ __device__ __forceinline__ int64_t head_elements(const scalar_t* p, int64_t n) {
  const int64_t bytes = (kBytesPerAccess - reinterpret_cast<uintptr_t>(p) % kBytesPerAccess) % kBytesPerAccess;
  const int64_t head = bytes / static_cast<int64_t>(sizeof(scalar_t));
  return head < n ? head : n;
}

// The dispatcher picks these kernels when any tensor argument is on CUDA. The shared checks already
// require all arguments on one device; this states the CUDA requirement in the kernel's own words
// (e.g. "interpolate: fake is on cpu but real is on cuda:0") rather than relying on that.
void check_cuda(const char* op, std::initializer_list<std::pair<const char*, const at::Tensor*>> args) {
  const std::pair<const char*, const at::Tensor*>* ref = nullptr;
  for (const auto& arg : args) {
    if (arg.second->is_cuda()) {
      ref = &arg;
      break;
    }
  }
  TORCH_CHECK_VALUE(ref != nullptr, op, ": ", args.begin()->first, " is on ",
                    args.begin()->second->device(), "; the CUDA kernel takes CUDA tensors only");
  for (const auto& arg : args) {
    TORCH_CHECK_VALUE(arg.second->device() == ref->second->device(), op, ": ", arg.first, " is on ",
                      arg.second->device(), " but ", ref->first, " is on ", ref->second->device());
  }
}

// ---- Reductions in a fixed order (deterministic: no floating-point atomics anywhere). ----

// Butterfly sum over each aligned group of `group` lanes (a power of two <= 32). Every lane of the
// warp must call it. Floating-point addition is commutative, so every lane of a group ends with the
// same bits; the association order is fixed by `group` alone.
template <typename T>
__device__ __forceinline__ T group_sum(T v, int group) {
  for (int offset = group / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  return group_sum(v, 32);
}

// Sum over the block in a fixed tree; the result is valid in warp 0 (thread 0 is the one that uses
// it). Every thread of the block must call it. `smem` holds kWarps values; the leading barrier
// makes a call safe right after a previous one that read `smem`.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* smem) {
  v = warp_sum(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) v = warp_sum(threadIdx.x < kWarps ? smem[threadIdx.x] : T(0));
  return v;
}

// ======================================== interpolate ========================================
// and grad_penalty_backward: both are out[k] = f(coef[sample(k)], in[k]...), one read of each input
// and one write, so they share one element-wise kernel.

// NOTE: [Per-sample element-wise kernel]
// A grid-stride loop over 16-byte vectors of the flat tensor. Each thread finds the sample of its
// first element with one 64-bit division, then advances it incrementally: a step of S elements
// moves the sample by S / per_sample and the offset within it by S % per_sample (at most one carry),
// and within a vector the offset is bumped element by element. So there is no per-element division,
// per_sample need not be a multiple of the vector width (a vector may straddle samples, even several
// when per_sample < width), and all indices are 64-bit (more than 2^31 elements is fine).
// The per-sample coefficient is recomputed only when an element's sample differs from the previous
// one the thread saw (for grad_penalty_backward it includes a division).
// Vector accesses are used when every pointer has the same misalignment (always for fresh
// allocations, which are aligned), after a scalar prologue up to the first 16-byte boundary (NOTE:
// [Prologue, vector body, tail]); otherwise every element takes the scalar loop.
//
// Op: static constexpr bool kTwoInputs; type coef_t; coef_t coef(int64_t sample) const;
//     scalar_t apply(coef_t coef, scalar_t x0, scalar_t x1) const  (x1 == x0 with one input).

// Vectors v = 0 .. n_vectors - 1 of W elements each, vector v holding elements first + v * W ...
// (first + v * W is 16-byte aligned in every pointer when W > 1).
template <int W, typename scalar_t, typename Op>
__device__ __forceinline__ void map_vectors(const Op& op, scalar_t* __restrict__ out,
                                            const scalar_t* __restrict__ in0,
                                            const scalar_t* __restrict__ in1, int64_t first,
                                            int64_t n_vectors, int64_t per_sample) {
  using Vec = cuda::AlignedVector<scalar_t, W>;
  using coef_t = typename Op::coef_t;
  const int64_t n_threads = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= n_vectors) return;

  // Element first + v * W is element `offset` of sample `sample`; one grid step is step_samples
  // samples and step_offset elements.
  out += first;
  in0 += first;
  if constexpr (Op::kTwoInputs) in1 += first;
  int64_t sample = (first + v * W) / per_sample;
  int64_t offset = (first + v * W) - sample * per_sample;
  const int64_t step = n_threads * W;
  const int64_t step_samples = step / per_sample;
  const int64_t step_offset = step - step_samples * per_sample;

  int64_t cached = -1;  // the sample whose coefficient `c` holds
  coef_t c{};
  for (; v < n_vectors; v += n_threads) {
    const Vec x0 = reinterpret_cast<const Vec*>(in0)[v];
    Vec x1;
    if constexpr (Op::kTwoInputs) {
      x1 = reinterpret_cast<const Vec*>(in1)[v];
    } else {
      x1 = x0;
    }
    Vec y;
    int64_t s = sample;
    int64_t e = offset;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      if (s != cached) {
        cached = s;
        c = op.coef(s);
      }
      y.val[j] = op.apply(c, x0.val[j], x1.val[j]);
      if (++e == per_sample) {
        e = 0;
        ++s;
      }
    }
    reinterpret_cast<Vec*>(out)[v] = y;

    sample += step_samples;
    offset += step_offset;
    if (offset >= per_sample) {
      offset -= per_sample;
      ++sample;
    }
  }
}

// One element k on its own (the prologue, the tail and the unaligned case's elements).
template <typename scalar_t, typename Op>
__device__ __forceinline__ void map_one(const Op& op, scalar_t* __restrict__ out,
                                        const scalar_t* __restrict__ in0,
                                        const scalar_t* __restrict__ in1, int64_t k,
                                        int64_t per_sample) {
  const scalar_t x0 = in0[k];
  scalar_t x1 = x0;
  if constexpr (Op::kTwoInputs) x1 = in1[k];
  out[k] = op.apply(op.coef(k / per_sample), x0, x1);
}

// NOTE: [Prologue, vector body, tail]
// When every pointer is misaligned by the same number of bytes (head elements before the first
// 16-byte boundary, the same in all of them), the first `head` elements are done one per thread,
// the vector body covers [head, head + n_vectors * kVec), and the fewer than kVec elements after it
// are done one per thread again. Pointers misaligned by different amounts (e.g. an input view with an
// odd storage offset against the freshly allocated, aligned output) cannot share 16-byte accesses:
// then `vectorize` is false and every element takes the scalar path.
template <typename scalar_t, typename Op>
__global__ void __launch_bounds__(kThreads)
    per_sample_map_kernel(const Op op, scalar_t* __restrict__ out, const scalar_t* __restrict__ in0,
                          const scalar_t* __restrict__ in1, int64_t numel, int64_t per_sample,
                          int64_t head, bool vectorize) {
  constexpr int kVec = vec_width<scalar_t>();
  if (!vectorize) {
    map_vectors<1>(op, out, in0, in1, 0, numel, per_sample);
    return;
  }
  const int64_t n_vectors = (numel - head) / kVec;
  map_vectors<kVec>(op, out, in0, in1, head, n_vectors, per_sample);
  // The prologue and the tail: fewer than kVec elements each, one per thread of the first threads.
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < head) map_one(op, out, in0, in1, t, per_sample);
  const int64_t k = head + n_vectors * kVec + t;
  if (k < numel) map_one(op, out, in0, in1, k, per_sample);
}

// The caller holds the device guard; numel > 0 (so per_sample > 0). in1 is null for one-input ops.
template <typename scalar_t, typename Op>
void launch_per_sample_map(const Op& op, scalar_t* out, const scalar_t* in0, const scalar_t* in1,
                           int64_t numel, int64_t per_sample) {
  constexpr int kVec = vec_width<scalar_t>();
  const int mis = misalignment(out);
  const bool vectorize = misalignment(in0) == mis && (in1 == nullptr || misalignment(in1) == mis);
  const int64_t head = vectorize ? head_elements(out, numel) : 0;
  // Threads with work: one per vector, and at least one per prologue or tail element (< kVec each).
  const int64_t work = vectorize ? std::max<int64_t>((numel - head) / kVec, kVec) : numel;
  // At most as many blocks as the SMs have thread slots for (2048 / 256 per SM on Hopper; 40-60
  // registers per thread let about half of them be resident at once); the grid-stride loop does the
  // rest. The grid size does not affect results (every output element is computed on its own).
  const cudaDeviceProp* props = at::cuda::getCurrentDeviceProperties();
  const int64_t max_blocks = static_cast<int64_t>(props->multiProcessorCount) *
                             std::max(1, props->maxThreadsPerMultiProcessor / kThreads);
  const int blocks = static_cast<int>(std::min(ceil_div(work, kThreads), max_blocks));
  per_sample_map_kernel<scalar_t, Op><<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      op, out, in0, in1, numel, per_sample, head, vectorize);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// One rounding each, never contracted or reassociated by the compiler.
__device__ __forceinline__ float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double fma_rn(double a, double b, double c) { return __fma_rn(a, b, c); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// out = fma(a, r, (1 - a) * f) in opmath (float32 for 16-bit types), a = alpha[sample]: the CPU
// kernel's expression, written out so both backends round the same way (NOTE: [interpolate's
// rounding] in csrc/cpu/penalty_cpu.cpp).
template <typename scalar_t>
struct InterpolateOp {
  using opmath_t = at::opmath_type<scalar_t>;
  using coef_t = opmath_t;
  static constexpr bool kTwoInputs = true;
  const scalar_t* alpha;

  __device__ __forceinline__ opmath_t coef(int64_t sample) const {
    return static_cast<opmath_t>(alpha[sample]);
  }
  __device__ __forceinline__ scalar_t apply(opmath_t a, scalar_t r, scalar_t f) const {
    const opmath_t bf = mul_rn(opmath_t(1) - a, static_cast<opmath_t>(f));
    return static_cast<scalar_t>(fma_rn(a, static_cast<opmath_t>(r), bf));
  }
};

at::Tensor interpolate_cuda(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  const InterpolateInputs in = check_interpolate_args(real, fake, alpha);
  check_cuda("interpolate", {{"real", &real}, {"fake", &fake}, {"alpha", &alpha}});
  const c10::cuda::CUDAGuard guard(in.real.device());
  // Same strides as real (and fake): element k of out is element k of both inputs.
  at::Tensor out = at::empty_like(in.real);
  const int64_t numel = in.real.numel();
  if (numel == 0) return out;  // B == 0 or per_sample == 0: nothing to launch
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, in.real.scalar_type(), "pygan::interpolate", [&] {
        const InterpolateOp<scalar_t> op{in.alpha.const_data_ptr<scalar_t>()};
        launch_per_sample_map<scalar_t>(op, out.mutable_data_ptr<scalar_t>(),
                                        in.real.const_data_ptr<scalar_t>(),
                                        in.fake.const_data_ptr<scalar_t>(), numel, in.per_sample);
      });
  return out;
}

// ======================================== grad_penalty ========================================

// NOTE: [Deterministic per-sample sums]
// Work is cut into "units" that depend on the shape only (never on the GPU, the grid or timing), so
// the result is bitwise the same on every run and every device:
//   * small samples (at most kGroupMaxVectors 16-byte vectors): one unit per sample, reduced by a
//     group of `group` lanes (the smallest power of two covering the sample's vectors, at most 32),
//     256 / group samples per block;
//   * larger samples: each sample is cut into n_chunks chunks of chunk_len elements (a multiple of
//     the vector width), one unit per chunk, reduced by a whole block; n_chunks > 1 only when the
//     batch alone gives too few blocks (B < kTargetUnits), so a batch of a few huge samples still
//     fills the GPU.
// Each lane sums its strided elements in order (after a scalar prologue up to the unit's first
// 16-byte boundary, so the unit's address modulo 16 is part of the plan: the same for a tensor and
// any freshly allocated copy of it), groups/blocks combine lanes in a fixed tree, and a
// sample's chunk partials (scratch [B * n_chunks]) are combined by one warp in a fixed order. For
// "mean"/"sum", each block of the finishing kernel adds the penalties of its samples (again a fixed
// assignment: the grid is at most kMaxGrid blocks, a function of the shape) into block_p[block],
// and one last block adds block_p in a fixed tree.
// Launches: 1 ("none", one chunk per sample), +1 when samples are chunked, +1 for "mean"/"sum".
constexpr int kUnroll = 4;                 // vectors a lane loads before using any (in flight together)
constexpr int64_t kGroupMaxVectors = 256;  // samples up to this many vectors go to lane groups
constexpr int64_t kTargetUnits = 2048;     // several waves of blocks on an H100/H200 (132 SMs)
constexpr int64_t kMaxGrid = 2048;         // grid-stride above this: bounds block_p's size

// What happens to a sample once its sum of squares is known: the norm, the penalty (penalty.h), the
// penalty written out for "none" (penalty_none != nullptr), and returned for the block's running sum.
// NOTE: [Tiny norms on CUDA] (the CPU kernel's NOTE: [Tiny norms], csrc/cpu/penalty_cpu.cpp):
// squares of elements below about sqrt(min normal) of acc_t underflow, so a sample of such gradients
// would get norm 0 and the zero-norm slope where the true slope is 2(n - c)/n. A sample whose sum of
// squares falls below min / epsilon is summed again, scaled by its largest element:
// ||g|| = m * sqrt(sum (g / m)^2), exact to rounding. The finishing thread does it serially (two
// passes over the sample): deterministic, and it only runs for such samples and all-zero ones.
template <typename acc_t>
__device__ __forceinline__ acc_t tiny_sum_squares();
template <>
__device__ __forceinline__ float tiny_sum_squares<float>() { return FLT_MIN / FLT_EPSILON; }
template <>
__device__ __forceinline__ double tiny_sum_squares<double>() { return DBL_MIN / DBL_EPSILON; }

template <typename acc_t, typename scalar_t>
__device__ acc_t scaled_norm(const scalar_t* __restrict__ x, int64_t n) {
  using opmath_t = at::opmath_type<scalar_t>;
  acc_t biggest = acc_t(0);
  for (int64_t i = 0; i < n; ++i) {
    const acc_t v = ::fabs(static_cast<acc_t>(static_cast<opmath_t>(x[i])));
    biggest = v > biggest ? v : biggest;
  }
  if (!(biggest > acc_t(0))) return biggest;  // all zeros
  acc_t total = acc_t(0);
  for (int64_t i = 0; i < n; ++i) {
    const acc_t v = static_cast<acc_t>(static_cast<opmath_t>(x[i])) / biggest;
    total += v * v;
  }
  return biggest * ::sqrt(total);
}

template <typename scalar_t, typename acc_t>
struct SampleFinish {
  acc_t* norms;
  scalar_t* penalty_none;
  acc_t center;
  bool one_sided;
  const scalar_t* grads;  // for the rescaled sum of a tiny sample (NOTE: [Tiny norms on CUDA])
  int64_t per_sample;

  __device__ __forceinline__ acc_t operator()(int64_t sample, acc_t sum_sq) const {
    acc_t norm = ::sqrt(sum_sq);  // IEEE sqrt (no fast-math flags)
    if (sum_sq < tiny_sum_squares<acc_t>()) {  // false for NaN, which propagates as it is
      norm = scaled_norm<acc_t>(grads + sample * per_sample, per_sample);
      sum_sq = norm * norm;
    }
    const acc_t p = penalty_value(sum_sq, norm, center, one_sided);
    norms[sample] = norm;
    if (penalty_none != nullptr) penalty_none[sample] = static_cast<scalar_t>(p);
    return p;
  }
};

// This lane's sum of squares over elements lane, lane + stride, ... of p[0, len), in order: the
// elements before p's first 16-byte boundary one at a time (the prologue, fewer than W), then
// W-vectors (kUnroll of them loaded, predicated, before any is used, so they are in flight together),
// then the fewer than W elements after the last whole vector. Any alignment and any len work.
template <int W, typename acc_t, typename scalar_t>
__device__ __forceinline__ acc_t lane_sum_squares(const scalar_t* __restrict__ p, int64_t len,
                                                  int lane, int stride) {
  using Vec = cuda::AlignedVector<scalar_t, W>;
  using opmath_t = at::opmath_type<scalar_t>;
  acc_t s = acc_t(0);
  const int64_t head = head_elements(p, len);
  for (int64_t i = lane; i < head; i += stride) {
    const acc_t x = static_cast<acc_t>(static_cast<opmath_t>(p[i]));
    s += x * x;
  }
  const Vec* pv = reinterpret_cast<const Vec*>(p + head);
  const int64_t n = (len - head) / W;
  for (int64_t i = lane; i < n; i += static_cast<int64_t>(kUnroll) * stride) {
    Vec v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i + static_cast<int64_t>(u) * stride < n) v[u] = pv[i + static_cast<int64_t>(u) * stride];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i + static_cast<int64_t>(u) * stride < n) {
#pragma unroll
        for (int j = 0; j < W; ++j) {
          const acc_t x = static_cast<acc_t>(static_cast<opmath_t>(v[u].val[j]));
          s += x * x;
        }
      }
    }
  }
  for (int64_t i = head + n * W + lane; i < len; i += stride) {
    const acc_t x = static_cast<acc_t>(static_cast<opmath_t>(p[i]));
    s += x * x;
  }
  return s;
}

// Pass 1: the sum of squares of every unit (NOTE: [Deterministic per-sample sums]). With one chunk
// per sample it finishes the sample too (norms, "none" penalties, block_p); with several it writes
// the chunk's partial sum to partials[unit]. kBlockUnit: a unit per block (group == kThreads), else
// a unit per group of `group` lanes.
template <typename scalar_t, typename acc_t, bool kBlockUnit>
__global__ void __launch_bounds__(kThreads)
    sum_squares_kernel(const scalar_t* __restrict__ grads, int64_t per_sample, int64_t n_chunks,
                       int64_t chunk_len, int64_t n_units, int group,
                       acc_t* __restrict__ partials, const SampleFinish<scalar_t, acc_t> finish,
                       acc_t* __restrict__ block_p) {
  constexpr int kVec = vec_width<scalar_t>();
  __shared__ acc_t smem[kWarps];
  const int g = kBlockUnit ? kThreads : group;
  const int rows = kThreads / g;  // units per block per tile
  const int row = threadIdx.x / g;
  const int lane = threadIdx.x % g;

  acc_t p_sum = acc_t(0);  // penalties of the samples this row finished, in order
  // The loop bound depends on blockIdx only, so every thread runs the same iterations (the
  // shuffles and barriers below need all of them).
  for (int64_t tile = blockIdx.x; tile * rows < n_units; tile += gridDim.x) {
    const int64_t unit = tile * rows + row;
    const bool active = unit < n_units;
    int64_t sample = 0;
    acc_t s = acc_t(0);
    if (active) {
      sample = n_chunks == 1 ? unit : unit / n_chunks;
      const int64_t begin = (unit - sample * n_chunks) * chunk_len;
      const int64_t len = per_sample - begin < chunk_len ? per_sample - begin : chunk_len;
      const scalar_t* p = grads + sample * per_sample + begin;
      s = lane_sum_squares<kVec, acc_t>(p, len, lane, g);
    }
    if constexpr (kBlockUnit) {
      s = block_sum(s, smem);
    } else {
      s = group_sum(s, g);
    }
    if (active && lane == 0) {
      if (n_chunks > 1) {
        partials[unit] = s;
      } else {
        p_sum += finish(sample, s);
      }
    }
  }
  if (block_p != nullptr) {  // uniform: the barriers in block_sum are safe
    p_sum = block_sum(p_sum, smem);
    if (threadIdx.x == 0) block_p[blockIdx.x] = p_sum;
  }
}

// Pass 2 (only when samples are chunked): one warp per sample adds its n_chunks partials (lane l
// takes chunks l, l + 32, ... in order, then a fixed butterfly) and finishes the sample.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    finish_chunks_kernel(const acc_t* __restrict__ partials, int64_t batch, int64_t n_chunks,
                         const SampleFinish<scalar_t, acc_t> finish, acc_t* __restrict__ block_p) {
  __shared__ acc_t smem[kWarps];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  acc_t p_sum = acc_t(0);
  for (int64_t tile = blockIdx.x; tile * kWarps < batch; tile += gridDim.x) {
    const int64_t sample = tile * kWarps + warp;
    if (sample < batch) {  // warp-uniform, so the warp's shuffles are complete
      acc_t s = acc_t(0);
      for (int64_t c = lane; c < n_chunks; c += 32) s += partials[sample * n_chunks + c];
      s = warp_sum(s);
      if (lane == 0) p_sum += finish(sample, s);
    }
  }
  if (block_p != nullptr) {
    p_sum = block_sum(p_sum, smem);
    if (threadIdx.x == 0) block_p[blockIdx.x] = p_sum;
  }
}

// Pass 3 ("mean"/"sum"): one block adds the n block sums in a fixed order and writes the 0-d penalty.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    reduce_penalty_kernel(const acc_t* __restrict__ block_p, int64_t n, int64_t batch, bool mean,
                          scalar_t* __restrict__ out) {
  __shared__ acc_t smem[kWarps];
  acc_t s = acc_t(0);
  for (int64_t i = threadIdx.x; i < n; i += kThreads) s += block_p[i];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) {
    if (mean) s /= static_cast<acc_t>(batch);
    out[0] = static_cast<scalar_t>(s);
  }
}

// The caller holds the device guard; batch > 0. norms [B] acc dtype; penalty [B] ("none") or 0-d.
template <typename scalar_t>
void launch_grad_penalty(const GradPenaltyInputs& in, double center, bool one_sided,
                         const at::Tensor& norms, const at::Tensor& penalty) {
  using acc_t = acc_type<scalar_t>;
  constexpr int kVec = vec_width<scalar_t>();
  const int64_t batch = in.batch;
  const int64_t per_sample = in.per_sample;
  const scalar_t* grads = in.grads.const_data_ptr<scalar_t>();
  const bool reduce = in.reduction != Reduction::None;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  // The plan (NOTE: [Deterministic per-sample sums]): shape-only.
  const int64_t vectors = ceil_div(per_sample, kVec);
  const bool block_unit = vectors > kGroupMaxVectors;
  int group = 1;
  int64_t n_chunks = 1;
  int64_t chunk_len = per_sample;
  if (block_unit) {
    group = kThreads;
    // Chunks of at least kUnroll vectors per thread, and only as many as it takes to reach
    // kTargetUnits units over the batch.
    const int64_t min_chunk = static_cast<int64_t>(kThreads) * kVec * kUnroll;
    n_chunks = std::clamp<int64_t>(ceil_div(kTargetUnits, batch), 1, ceil_div(per_sample, min_chunk));
    chunk_len = ceil_div(ceil_div(per_sample, n_chunks), kVec) * kVec;
    n_chunks = ceil_div(per_sample, chunk_len);  // every chunk non-empty
  } else {
    while (group < 32 && group < vectors) group *= 2;
  }
  const int64_t n_units = batch * n_chunks;
  const int grid_units =
      static_cast<int>(std::min(ceil_div(n_units, kThreads / group), kMaxGrid));
  const bool chunked = n_chunks > 1;
  const int grid_finish =
      chunked ? static_cast<int>(std::min(ceil_div(batch, kWarps), kMaxGrid)) : grid_units;

  const at::TensorOptions acc_options = in.grads.options().dtype(acc_dtype(in.grads.scalar_type()));
  at::Tensor partials = chunked ? at::empty({n_units}, acc_options) : at::Tensor();
  at::Tensor block_p = reduce ? at::empty({grid_finish}, acc_options) : at::Tensor();
  acc_t* partials_ptr = chunked ? partials.mutable_data_ptr<acc_t>() : nullptr;
  acc_t* block_p_ptr = reduce ? block_p.mutable_data_ptr<acc_t>() : nullptr;

  const SampleFinish<scalar_t, acc_t> finish{norms.mutable_data_ptr<acc_t>(),
                                             reduce ? nullptr : penalty.mutable_data_ptr<scalar_t>(),
                                             static_cast<acc_t>(center), one_sided, grads,
                                             per_sample};
  acc_t* pass1_block_p = chunked ? nullptr : block_p_ptr;
  if (block_unit) {
    sum_squares_kernel<scalar_t, acc_t, true><<<grid_units, kThreads, 0, stream>>>(
        grads, per_sample, n_chunks, chunk_len, n_units, group, partials_ptr, finish,
        pass1_block_p);
  } else {
    sum_squares_kernel<scalar_t, acc_t, false><<<grid_units, kThreads, 0, stream>>>(
        grads, per_sample, n_chunks, chunk_len, n_units, group, partials_ptr, finish,
        pass1_block_p);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (chunked) {
    finish_chunks_kernel<scalar_t, acc_t><<<grid_finish, kThreads, 0, stream>>>(
        partials_ptr, batch, n_chunks, finish, block_p_ptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (reduce) {
    reduce_penalty_kernel<scalar_t, acc_t><<<1, kThreads, 0, stream>>>(
        block_p_ptr, grid_finish, batch, in.reduction == Reduction::Mean,
        penalty.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_cuda(const at::Tensor& grads, double center,
                                                     bool one_sided, c10::string_view reduction) {
  const GradPenaltyInputs in = check_grad_penalty_args(grads, center, reduction, "grad_penalty");
  check_cuda("grad_penalty", {{"grads", &grads}});
  const c10::cuda::CUDAGuard guard(in.grads.device());
  const at::ScalarType dtype = in.grads.scalar_type();
  at::Tensor norms = at::empty({in.batch}, in.grads.options().dtype(acc_dtype(dtype)));
  at::Tensor penalty = in.reduction == Reduction::None ? at::empty({in.batch}, in.grads.options())
                                                       : at::empty({}, in.grads.options());
  if (in.batch == 0) {
    // "none": empty outputs. "sum": the empty sum, 0 ("mean" was rejected by the checks).
    if (in.reduction != Reduction::None) penalty.zero_();
    return {penalty, norms};
  }
  // per_sample == 0 goes through the kernels: every sum of squares is 0.
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "pygan::grad_penalty", [&] {
    launch_grad_penalty<scalar_t>(in, center, one_sided, norms, penalty);
  });
  return {penalty, norms};
}

// =================================== grad_penalty_backward ===================================

// out = w * g, w = scale * grad_out_i * penalty_slope(norm_i) formed in the accumulation type (as the
// CPU kernel does), then cast to opmath (float32 for 16-bit and float32, float64 for float64) for the
// multiply; rounded once. grad_out_stride is 1 for "none" ([B]) and 0 for "mean"/"sum" (0-d): read on
// the device, never on the host.
// A slope beyond opmath's range (a float32 sample of denormal norm: 2/n overflows float) is applied
// in acc_t, where it is finite, and the product rounded once, as on the CPU (NOTE: [Tiny norms]).
template <typename opmath_t, typename acc_t>
struct BackwardCoef {
  opmath_t w;
  acc_t wide;
  bool use_wide;
};

template <typename scalar_t>
struct PenaltyBackwardOp {
  using opmath_t = at::opmath_type<scalar_t>;
  using acc_t = acc_type<scalar_t>;
  using coef_t = BackwardCoef<opmath_t, acc_t>;
  static constexpr bool kTwoInputs = false;
  const acc_t* grad_out;
  int64_t grad_out_stride;
  const acc_t* norms;
  acc_t scale;
  acc_t center;
  bool one_sided;

  __device__ __forceinline__ coef_t coef(int64_t sample) const {
    const acc_t wide = scale * grad_out[sample * grad_out_stride] *
                       penalty_slope(norms[sample], center, one_sided);
    const opmath_t w = static_cast<opmath_t>(wide);
    return {w, wide, ::isfinite(wide) && !::isfinite(w)};
  }
  __device__ __forceinline__ scalar_t apply(const coef_t& c, scalar_t g, scalar_t) const {
    if (c.use_wide) return static_cast<scalar_t>(c.wide * static_cast<acc_t>(g));
    return static_cast<scalar_t>(c.w * static_cast<opmath_t>(g));
  }
};

at::Tensor grad_penalty_backward_cuda(const at::Tensor& grad_out, const at::Tensor& grads,
                                      const at::Tensor& norms, double center, bool one_sided,
                                      c10::string_view reduction) {
  const GradPenaltyBackwardInputs in =
      check_grad_penalty_backward_args(grad_out, grads, norms, center, reduction);
  check_cuda("grad_penalty_backward", {{"grads", &grads}, {"grad_out", &grad_out}, {"norms", &norms}});
  const GradPenaltyInputs& base = in.base;
  const c10::cuda::CUDAGuard guard(base.grads.device());
  // Same strides as the sample-blocked grads: element k of out is element k of grads.
  at::Tensor out = at::empty_like(base.grads);
  const int64_t numel = base.grads.numel();
  if (numel == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, base.grads.scalar_type(), "pygan::grad_penalty_backward", [&] {
        using acc_t = acc_type<scalar_t>;
        const PenaltyBackwardOp<scalar_t> op{
            in.grad_out.const_data_ptr<acc_t>(),
            base.reduction == Reduction::None ? 1 : 0,
            in.norms.const_data_ptr<acc_t>(),
            base.reduction == Reduction::Mean ? acc_t(1) / static_cast<acc_t>(base.batch) : acc_t(1),
            static_cast<acc_t>(center),
            one_sided};
        launch_per_sample_map<scalar_t>(op, out.mutable_data_ptr<scalar_t>(),
                                        base.grads.const_data_ptr<scalar_t>(), nullptr, numel,
                                        base.per_sample);
      });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("interpolate", interpolate_cuda);
  m.impl("grad_penalty", grad_penalty_cuda);
  m.impl("grad_penalty_backward", grad_penalty_backward_cuda);
}

}  // namespace pygan
