// clip_'s Autograd kernel: a parameter update that records nothing (NOTE: [Parameter-update ops and
// autograd] in bump_versions.h).
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/library.h>

#include <optional>

#include "bump_versions.h"
#include "op_handles.h"

namespace pygan {
namespace {

void clip_autograd(at::TensorList tensors, std::optional<double> min, std::optional<double> max) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    clip_op().call(tensors, min, max);
  }
  bump_versions(tensors);
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) { m.impl("clip_", clip_autograd); }

}  // namespace pygan
