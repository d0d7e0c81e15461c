// Binary arithmetic in float32 with NumPy broadcasting (the references: ir/ops/elementwise.py):
// one IEEE operation per element, so results equal NumPy's bit for bit. Residual adds and the
// like in a plan; memory-bound, portable code the compiler vectorises.
#pragma once

#include <cstdint>

namespace pocketml {
namespace elementwise {

enum class BinaryOp { Add, Sub, Mul, Div };

// out[i] = a[i] op b[i] over `shape` (rank axes), out C-contiguous; a and b read through element
// strides sa, sb (0 on broadcast axes). threads 0: default.
void binary(BinaryOp op, const float* a, const int64_t* sa, const float* b, const int64_t* sb,
            float* out, const int64_t* shape, int rank, int threads);

}  // namespace elementwise
}  // namespace pocketml
