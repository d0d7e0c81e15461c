// Plan steps of elementwise and reduction ops on the elementwise kernels: float32 and int64
// arithmetic, comparisons, logic, where, cast, concat, arange, unary math, reductions, clip,
// predicates, full. Each returns false where its kernel does not take the arguments, so the
// reference runs (program.cpp dispatches).
#pragma once

#include <cstdint>
#include <vector>

#include "plan/buffers.h"
#include "plan/layers.h"
#include "plan/program.h"
#include "plan/tensor.h"

namespace pocketml {
namespace plan {

bool compare_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool logical_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool where_step(Args& a, Args& outs, BufferPool& pool);
bool binary_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads);
bool arange_step(const Step& s, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms);
bool cast_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool concat_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool unary_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool reduce_sum_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads);
bool clip_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool fake_quantize_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool quantize_rows_step(Args& a, Args& outs, BufferPool& pool);
bool dequantize_rows_step(Args& a, Args& outs, BufferPool& pool);
bool predicate_step(const Step& s, Args& a, Args& outs, BufferPool& pool);
bool fill_step(const Step& s, Args& a, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms);

}  // namespace plan
}  // namespace pocketml
