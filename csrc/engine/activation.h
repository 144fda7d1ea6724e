// The activations one element at a time, with the values the microkernels' stores produce.
#pragma once

#include <cmath>

#include "../kernels/microkernels.h"

namespace spx {

template <typename T>
T activate(T v, const Epilogue<T>& e) {
  switch (e.activation) {
    case Activation::kNone: return v;
    case Activation::kRelu: return v < T(0) ? T(0) : v;
    case Activation::kRelu6: return v < T(0) ? T(0) : v > T(6) ? T(6) : v;
    case Activation::kLeakyRelu: return v < T(0) ? v * e.negative_slope : v;
    case Activation::kTanh: return std::tanh(v);
    case Activation::kSigmoid: return T(1) / (T(1) + std::exp(-v));
  }
  return v;
}

}  // namespace spx
