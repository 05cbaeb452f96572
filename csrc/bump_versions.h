// NOTE: [Parameter-update ops and autograd]
// clip_ and rmsprop_step_ are parameter updates, like torch.optim's steps or `p.data.clamp_()`: they are
// not differentiable and must work on leaf parameters that require grad without an enclosing
// torch.no_grad(). So they get an explicit Autograd kernel (csrc/clip_autograd.cpp,
// csrc/rmsprop_autograd.cpp) that records nothing, bumps the version counter of every tensor it
// mutates (so a tensor saved for backward and then updated is still caught by autograd's "modified
// by an inplace operation" check), and redispatches below autograd.
#pragma once

#include <ATen/core/Tensor.h>

namespace pygan {

inline void bump_versions(at::TensorList tensors) {
  for (const auto& t : tensors) {
    if (t.defined() && !t.is_inference()) t.unsafeGetTensorImpl()->bump_version();
  }
}

}  // namespace pygan
