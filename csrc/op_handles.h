// Typed dispatcher handles of pygan's ops, for C++ that calls them through the dispatcher (the
// Autograd kernels in pygan.cpp, the eager entry points in python.cpp). One place spells each
// schema's C++ signature.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>

namespace pygan {

using ClipSignature = void(at::TensorList, std::optional<double>, std::optional<double>);
using RMSpropStepSignature = void(at::TensorList, at::TensorList, at::TensorList, at::TensorList,
                                  at::TensorList, double, double, double, double, double, bool, bool,
                                  std::optional<double>, std::optional<double>);

inline const c10::TypedOperatorHandle<ClipSignature>& clip_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("pygan::clip_", "").typed<ClipSignature>();
  return op;
}

inline const c10::TypedOperatorHandle<RMSpropStepSignature>& rmsprop_step_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pygan::rmsprop_step_", "")
                             .typed<RMSpropStepSignature>();
  return op;
}

}  // namespace pygan
