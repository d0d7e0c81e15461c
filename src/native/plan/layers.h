// Plan steps of whole layers that have no packed weight: recurrent cells and sequences, matmul of
// two activations and einsum, linear with a computed weight, conv_transpose, resize, adaptive
// pooling, group / batch norm, prelu and softmax. Each takes its step's arguments (after the
// folded views) and returns false where its kernel does not take them, so the reference runs
// (program.cpp dispatches; the references stay the definitions, ir/ops/).
#pragma once

#include <cstdint>
#include <vector>

#include "plan/buffers.h"
#include "plan/program.h"
#include "plan/tensor.h"

namespace pocketml {
namespace plan {

using Args = std::vector<Tensor>;

bool prelu_step(Args& a, Args& outs, BufferPool& pool, int threads);
bool softmax_step(int axis, bool log, Args& a, Args& outs, BufferPool& pool);
bool einsum_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads);
bool channel_norm_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool matmul_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads);
bool adaptive_pool_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool conv_transpose_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads);
bool resize_step(const Step& s, Args& a, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms);
bool recurrent_step(const RnnSpec& r, Args& a, Args& outs, BufferPool& pool, int threads);

}  // namespace plan
}  // namespace pocketml
