// The shape-only ops of a plan applied to Tensors: each makes a view of the same bytes, as NumPy
// does (reshape copies only where no view can have the new shape), and raises
// std::invalid_argument with NumPy's reason where NumPy raises. The definitions are the
// references in ir/ops/shape.py.
#pragma once

#include <cstdint>

#include "plan/buffers.h"
#include "plan/tensor.h"

namespace pocketml {
namespace plan {

// np.reshape(t, shape): one entry may be -1.
void reshape(Tensor& t, const int64_t* shape, int n, BufferPool& pool);
// np.transpose(t, perm)
void transpose(Tensor& t, const int64_t* perm, int n);
// np.squeeze(t, axis=axes)
void squeeze(Tensor& t, const int64_t* axes, int n);
// np.expand_dims(t, axes)
void expand_dims(Tensor& t, const int64_t* axes, int n);
// ir/ops/shape.py expand: NumPy broadcasting to shape, new axes prepended, -1 keeps an axis.
void expand(Tensor& t, const int64_t* shape, int n);
// t[begin:end:step] on each of axes (Python slice semantics: negatives count from the end,
// bounds clamp).
void slice(Tensor& t, const int64_t* axes, const int64_t* begin, const int64_t* end,
           const int64_t* step, int n);

// t broadcast to shape (NumPy rules): false where it does not broadcast.
bool broadcast_to(Tensor& t, int rank, const int64_t* shape);
// dst[...] = src[...] elementwise (same shape and itemsize; src may have zero strides).
void copy(const Tensor& src, const Tensor& dst);
// The same over up to threads threads (<= 0: the default) where dst is large.
void copy(const Tensor& src, const Tensor& dst, int threads);
// t itself when C-contiguous, else a contiguous copy from the pool.
Tensor contiguous(const Tensor& t, BufferPool& pool);

}  // namespace plan
}  // namespace pocketml
