// A convolution operator: created once from its parameters and weights (XNNPACK's create),
// it plans per input shape and packs per weight layout, both cached, and executes per call.
// Layers keep one for their lifetime; the functional API makes one per call.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "../engine/execute.h"
#include "../engine/pack.h"
#include "../engine/plan.h"
#include "ops.h"

namespace spx {

enum class OpKind { kConv, kConvTranspose, kSubpixel };

struct OpParams {
  OpKind kind = OpKind::kConv;
  TransposedMethod method = TransposedMethod::kPolyphase;  // transposed only
  Extent kernel{}, stride{}, dilation{};
  Extent factor{1, 1, 1};  // sub-pixel only
  bool dcr = false;        // sub-pixel only
  int64_t groups = 1, in_channels = 0, out_channels = 0;  // out_channels: of the result
  bool channels_last = false;
};

// S is the storage type of inputs, weights and outputs; T the type it computes in (float32 for
// the half-precision types).
template <typename S>
class ConvOperator {
 public:
  typedef compute_t<S> T;
  // `weight` and `bias` (may be null) must outlive the operator; they are read, never written.
  ConvOperator(const OpParams& params, const S* weight, const S* bias, const Epilogue<T>& epilogue);

  const OpParams& params() const { return params_; }
  // pad_begin: conv zero padding at the start, or the transposed convolution's crop.
  ConvShape shape(int64_t batch, const Extent& in, const Extent& out, const Extent& pad_begin) const;
  // The plan for an input shape (cached) and the packed weights it needs (cached).
  std::shared_ptr<const ConvPlan> plan(const ConvShape& shape, int threads) const;
  std::shared_ptr<const PackedWeights<T>> packed(const ConvPlan& plan) const;
  // y = op(x) for x and y of the given batch and spatial sizes, C-contiguous in the layout.
  void run(const ConvShape& shape, const S* x, S* y, int threads) const;
  // Whether run() computes this shape as a plain scatter (tiny, single-threaded).
  bool runs_as_scatter(const ConvShape& shape) const;

 private:
  void run_with_nonfinite_weights(const ConvShape& shape, const ConvPlan& plan, const PackedWeights<T>& packed,
                                  const S* x, S* y) const;
  void run_widened(const ConvShape& shape, const S* x, S* y, int threads) const;

  OpParams params_;
  const S* weight_;
  const S* bias_;
  Epilogue<T> epilogue_;
  bool finite_weights_;
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<std::vector<int64_t>, std::shared_ptr<const ConvPlan>>> plans_;
  mutable std::vector<std::shared_ptr<const PackedWeights<T>>> packs_;
};

// The activation as a separate pass (for the paths that cannot fuse it into a tile store).
template <typename T>
void apply_activation(T* y, int64_t count, const Epilogue<T>& epilogue);

}  // namespace spx
