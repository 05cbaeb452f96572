// Typed dispatcher handles of pygan's ops, for C++ that calls them through the dispatcher (the
// Autograd kernels in *_autograd.cpp, the eager entry points in python.cpp). One place spells each
// schema's C++ signature.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

namespace pygan {

using ClipSignature = void(at::TensorList, std::optional<double>, std::optional<double>);
using RMSpropStepSignature = void(at::TensorList, at::TensorList, at::TensorList, at::TensorList,
                                  at::TensorList, double, double, double, double, double, bool, bool,
                                  std::optional<double>, std::optional<double>);

using InterpolateSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&);
using GradPenaltySignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, double, bool,
                                                                c10::string_view);
using GradPenaltyBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, double, bool, c10::string_view);

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

inline const c10::TypedOperatorHandle<InterpolateSignature>& interpolate_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pygan::interpolate", "")
                             .typed<InterpolateSignature>();
  return op;
}

inline const c10::TypedOperatorHandle<GradPenaltySignature>& grad_penalty_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pygan::grad_penalty", "")
                             .typed<GradPenaltySignature>();
  return op;
}

inline const c10::TypedOperatorHandle<GradPenaltyBackwardSignature>& grad_penalty_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pygan::grad_penalty_backward", "")
                             .typed<GradPenaltyBackwardSignature>();
  return op;
}

}  // namespace pygan
