// Recurrent layers (ir/ops/recurrent.py): LSTM, GRU and plain RNN steps over time, one layer and
// one direction a call. The input projections of every step (x_t @ w_ih^T + b_ih) come computed,
// as one GEMM over the whole sequence; each step then multiplies the state by w_hh (a gemm of B
// rows on the linear kernels, any weight format) and applies the gates in place.
#pragma once

#include <cstdint>

#include "formats/weights.h"

namespace pocketml {
namespace recurrent {

enum class Cell { Lstm, Gru, RnnTanh, RnnRelu };

inline int gate_count(Cell c) { return c == Cell::Lstm ? 4 : c == Cell::Gru ? 3 : 1; }

struct Layer {
  Cell cell = Cell::Lstm;
  int64_t B = 1, H = 0, Hout = 0;       // batch, hidden size, output size (H, or an LSTM's proj_size)
  const WeightView* w_hh = nullptr;     // [G*H, Hout]
  const float* b_hh = nullptr;          // [G*H] or null
  const WeightView* w_hr = nullptr;     // LSTM projection [Hout, H] or null
};

// Runs T steps (reverse: from T-1 down to 0). gx: the input projections, row (t, b) of G*H floats
// at gx + (t * gx_t + b * gx_b) * G*H, overwritten. h [B, Hout] and, for an LSTM, c [B, H] hold the
// state in and out. out: null, or where h_t goes, row (t, b) at out + t * out_t + b * out_b floats.
// Gates in float32 like the reference (the C library's tanhf and expf).
void run(const Layer& layer, float* gx, int64_t T, int64_t gx_t, int64_t gx_b, float* h, float* c,
         float* out, int64_t out_t, int64_t out_b, bool reverse, int threads);

}  // namespace recurrent
}  // namespace pocketml
