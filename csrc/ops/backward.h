// Gradients for training. The input gradients are the forward operators themselves (a
// transposed convolution's is a strided convolution of grad_y with the same weight, a
// convolution's a transposed one); what is new is the weight and bias gradients.
#pragma once

#include <cstdint>

#include "ops.h"

namespace spx {

// grad_weight (out_channels, in_channels/groups, *kernel), C-contiguous, of y = conv(x, w):
// `s` describes the convolution, x (batch, in_channels, *in), grad_y (batch, out_channels, *out),
// pad_begin its zero padding at the start. Run by the engine or, channels last, by the pixel
// reduction (see backward.cpp).
// A transposed convolution's (in_channels, out_channels/groups, *kernel) is the same call with
// x and grad_y swapped (in <-> out, channels too) and pad_begin its crop.
template <typename T>
void conv_weight_grad(const ConvShape& s, const T* x, const T* grad_y, T* grad_weight, int threads);

// grad_bias[c] = sum of grad_y[n, c, pixels] (channels_last: grad_y[n, pixels, c]).
template <typename T>
void bias_grad(int64_t batch, int64_t channels, int64_t pixels, bool channels_last, const T* grad_y, T* grad_bias,
               int threads);

}  // namespace spx
