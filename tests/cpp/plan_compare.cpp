#include "plan_compare.h"

namespace spx_test {
namespace {

bool same(const spx::TensorStrides& a, const spx::TensorStrides& b);
bool same(const spx::InputFrame& a, const spx::InputFrame& b);
bool same(const spx::Tap& a, const spx::Tap& b);
bool same(const spx::Phase& a, const spx::Phase& b);
bool same(const spx::Block& a, const spx::Block& b);

template <typename X>
bool same(const X& a, const X& b) {
  return a == b;
}
template <typename X>
bool same(const std::vector<X>& a, const std::vector<X>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

bool same(const spx::TensorStrides& a, const spx::TensorStrides& b) {
  return a.n == b.n && a.c == b.c && a.spatial == b.spatial;
}
bool same(const spx::InputFrame& a, const spx::InputFrame& b) {
  return a.pad == b.pad && a.step == b.step && a.size == b.size;
}
bool same(const spx::Tap& a, const spx::Tap& b) { return a.offset == b.offset && a.weight_offset == b.weight_offset; }
bool same(const spx::Phase& a, const spx::Phase& b) {
  return a.count == b.count && a.out_first == b.out_first && a.out_step == b.out_step && same(a.taps, b.taps);
}
bool same(const spx::Block& a, const spx::Block& b) {
  return a.phase == b.phase && a.group == b.group && a.weight_first == b.weight_first &&
         a.weight_channel_step == b.weight_channel_step && a.bias_first == b.bias_first && a.bias_step == b.bias_step &&
         a.out_offsets == b.out_offsets;
}

}  // namespace

// Every field of ConvPlan and of its ConvProblem (a field added to either belongs here too).
#define SPX_PLAN_FIELDS(F)                                                                                    \
  F(problem.batch) F(problem.in_channels) F(problem.groups) F(problem.in) F(problem.stride) F(problem.x)      \
  F(problem.y) F(problem.frame) F(problem.weight_input_step) F(problem.structural_zeros)               \
  F(problem.phases) F(problem.blocks) F(family) F(mr) F(nr) F(units.blocks) F(units.buffered)                \
  F(units.max_siblings) F(frame.col_phases) F(frame.cols_per_phase) F(frame.row_len) F(frame.plane)          \
  F(frame.rows) F(frame.elements) F(pack.chanvec) F(pack.tile_channels) F(pack.weights_first)                \
  F(pack.tiles_first) F(reduction_offsets) F(out_offsets) F(contiguous_channels) F(macs) F(threads)          \
  F(task_rows) F(task_tiles) F(task_images) F(tasks_per_image) F(tasks) F(first_task) F(buffer_row) F(buffer_len)

std::vector<std::string> plan_differences(const spx::ConvPlan& a, const spx::ConvPlan& b) {
  std::vector<std::string> differ;
#define SPX_COMPARE_FIELD(field) \
  if (!same(a.field, b.field)) differ.push_back(#field);
  SPX_PLAN_FIELDS(SPX_COMPARE_FIELD)
#undef SPX_COMPARE_FIELD
  return differ;
}

}  // namespace spx_test
