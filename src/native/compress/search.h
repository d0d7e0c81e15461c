// The symmetric grid search of compress/search.py (`fit_symmetric`): for each row (block) of w,
// the scale and codes in [qmin, qmax] that minimise sum(hw * (w - codes * scale)^2), trying
// max|w| / half * factor for each factor, refitting each rounding's scale by least squares, then
// `refine` rounds of re-rounding to the best. Bit for bit the NumPy reference (float32 products,
// float64 sums in NumPy's pairwise order; compiled without contraction), 30-50x faster: the
// searched int4/int8 grids of data-free compression and every GPTQ group's grid.
#pragma once

#include <cstdint>

namespace pocketml {

// w, hw: rows x L float32, C-contiguous (hw: search.py's `_weights`, non-negative); scale: rows
// float32; codes: rows x L float32. qmin <= -1, qmax >= 1.
void fit_symmetric(const float* w, const float* hw, int64_t rows, int64_t L, int qmin, int qmax,
                   const double* factors, int nfactors, int refine, float* scale, float* codes, int threads);

}  // namespace pocketml
