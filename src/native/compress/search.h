// The grid searches of compress/search.py. `fit_symmetric`: for each row (block) of w,
// the scale and codes in [qmin, qmax] that minimise sum(hw * (w - codes * scale)^2), trying
// max|w| / half * factor for each factor, refitting each rounding's scale by least squares, then
// `refine` rounds of re-rounding to the best. Bit for bit the NumPy reference (float32 products,
// float64 sums in NumPy's pairwise order; compiled without contraction), 5-9x faster on 2 cores:
// the searched integer grids of data-free compression and every GPTQ group's grid.
#pragma once

#include <cstdint>

namespace pocketml {

// w, hw: rows x L float32, C-contiguous (hw: search.py's `_weights`, non-negative); scale: rows
// float32; codes: rows x L float32. qmin <= -1, qmax >= 1.
void fit_symmetric(const float* w, const float* hw, int64_t rows, int64_t L, int qmin, int qmax,
                   const double* factors, int nfactors, int refine, float* scale, float* codes, int threads);

// `fit_affine`'s search, the same way: w ≈ codes * scale + offset with codes in [0, levels] (the
// caller adds qmin), each span levels + spans[i] over the block's range tried, scale and offset
// refitted by weighted least squares. scale, offset: rows float32; codes: rows x L float32.
void fit_affine(const float* w, const float* hw, int64_t rows, int64_t L, int levels, const double* spans,
                int nspans, float* scale, float* offset, float* codes, int threads);

}  // namespace pocketml
