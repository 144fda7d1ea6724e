// What the tests compare the engine with: convolutions written as direct loops from their
// definitions, test data, and the engine run end to end on a described problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../csrc/kernels/microkernels.h"
#include "../../csrc/ops/ops.h"

namespace spx_test {

enum class Op { kConv, kConvTranspose, kSubpixel };

// One convolution of any rank; the vectors have one entry per spatial axis.
struct Geometry {
  int64_t batch = 1, in_channels = 1, out_channels = 1, groups = 1;  // out_channels: of y
  std::vector<int64_t> in, kernel, stride, dilation, pad;  // pad: conv padding / transposed crop
  std::vector<int64_t> factor;                             // sub-pixel only
  int64_t output_padding = 0;                              // transposed: extra outputs per axis
};

struct ConvCase {
  std::string name;
  Op op = Op::kConv;
  spx::ConvShape shape;  // rank 3, unit leading axes
  spx::Extent factor{1, 1, 1};
  bool dcr = false;
  spx::TransposedMethod method = spx::TransposedMethod::kPolyphase;
};

// The case's shape with symmetric conv padding (pad at both ends) and PyTorch's output sizes.
ConvCase make_case(const std::string& name, Op op, const Geometry& g, bool channels_last);
std::string describe(const ConvCase& c);  // name, layout and sizes, for failure messages

spx::ConvProblem describe_problem(const ConvCase& c);
int64_t weight_count(const ConvCase& c);
int64_t bias_count(const ConvCase& c);
int64_t input_count(const ConvCase& c);
int64_t output_count(const ConvCase& c);

// Element offset of (n, c, p) in a C-contiguous (n, c, *size) or (n, *size, c) tensor.
int64_t tensor_offset(int64_t channels, const spx::Extent& size, bool channels_last, int64_t n, int64_t c,
                      const spx::Extent& p);

// The definitions, summed in double (exact for grid_values data). bias may be null.
// conv: every kernel tap of the zero-padded input, so a non-finite weight meets padding too;
// transposed: only the terms of real input pixels, as PyTorch defines it.
template <typename T>
std::vector<double> reference(const ConvCase& c, const T* x, const T* w, const T* bias);

template <typename T>
T activate(T v, spx::Activation a, T negative_slope);

// Multiples of 1/8 in [-2, 2]: products and sums of these are exact in float, so the engine's
// results do not depend on summation order and compare exactly.
template <typename T>
std::vector<T> grid_values(int64_t count, unsigned seed);
// Uniform in [-1, 1): results depend on summation order (for bit-identity tests).
template <typename T>
std::vector<T> random_values(int64_t count, unsigned seed);

// plan -> pack -> execute with the tile shapes of the kernels in use.
template <typename T>
std::vector<T> run_engine(const ConvCase& c, const T* x, const T* w, const T* bias, int threads,
                          const spx::Epilogue<T>& epilogue);

// Counts mismatches (reported through CHECK_MSG): equal, both NaN, or for transcendental
// activations within `ulps` units in the last place of the float type.
template <typename T>
int compare(const std::vector<T>& got, const std::vector<double>& want, const std::string& what, int ulps = 0);

}  // namespace spx_test
