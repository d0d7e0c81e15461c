// The plan's indexing steps (take, gather, index with integer tensors) and running sums: data
// movement over any dtype, read through byte strides, bit for bit the NumPy references of
// ir/ops/indexing.py and reduce.py (cumsum: int64 wrapping, float32 accumulated in double and
// rounded once per output). Each returns false where its kernel does not take the arguments (an
// index out of range included): the step's reference then runs and raises its error.
#pragma once

#include <vector>

#include "plan/buffers.h"
#include "plan/tensor.h"

namespace pocketml {
namespace plan {

// np.take(x, idx, axis) (negative: -n..-1 count from the end, else they are out of range)
bool take_step(int axis, bool negative, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool);
// torch.gather(x, axis, idx): idx of x's rank, out of idx's shape
bool gather_step(int axis, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool);
// x[..., i0, i1, ...] with integer index tensors on consecutive axes (broadcast together; the
// result's dims in their place), negative indices counting from the end
bool index_step(const std::vector<int>& axes, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool);
// pad (ir/ops/shape.py): mode 0 constant (value: float32 x only, else 0), 1 reflect, 2 replicate,
// 3 circular; pads [begin, end] per axis, negative ones cropping (constant)
bool pad_step(int mode, const std::vector<int64_t>& pads, double value, std::vector<Tensor>& a,
              std::vector<Tensor>& outs, BufferPool& pool);
// np.cumsum (product: np.cumprod) (x, axis) of an int64 or float32 x
bool cumsum_step(int axis, bool product, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool);

// np.tile(x, reps) (one count per axis), any dtype
bool tile_step(const std::vector<int64_t>& reps, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool);

// sort / topk (ir/ops/indexing.py) of a float32 or int64 x along axis: the values and their int64
// positions, stable (descending: equal values in their original order), NaN the largest; k < 0:
// the whole axis (sort), else the first k (topk)
bool sort_step(int axis, bool descending, int64_t k, std::vector<Tensor>& a, std::vector<Tensor>& outs,
               BufferPool& pool);

// torch.scatter (ir/ops/indexing.py): a copy of x with out[.., idx[p], ..] = updates[p] along axis,
// or combined with the value there (reduce 1 add, 2 mul, 3 max, 4 min: float32 and int64),
// updates broadcast to the indices' shape
bool scatter_step(int axis, int reduce, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool);

// index_put (x, values, integer indices on consecutive axes): a copy of x with x[..., i0, i1, ...]
// = values (broadcast), or += values, repeats summed in order, where `accumulate` (float32, int64)
bool index_put_step(const std::vector<int>& axes, bool accumulate, std::vector<Tensor>& a, std::vector<Tensor>& outs,
                    BufferPool& pool);

// np.tril / np.triu (upper) on the last two axes, diagonal k, any dtype
bool tri_step(int64_t k, bool upper, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool);

}  // namespace plan
}  // namespace pocketml
