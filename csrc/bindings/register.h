#pragma once

#include <pybind11/pybind11.h>

namespace spx_bind {

void register_conv(pybind11::module_& m);     // register_conv.cpp: the convolution operators
void register_shuffle(pybind11::module_& m);  // register_shuffle.cpp: shuffles, zero insertion
void register_config(pybind11::module_& m);   // register_config.cpp: threads, SIMD, build facts
void register_backward(pybind11::module_& m); // register_backward.cpp: weight and bias gradients

}  // namespace spx_bind
