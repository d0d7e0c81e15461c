// Optimal 1-D k-means for palettization: the native twin of pocketml.compress.kmeans'
// `_kmeans_1d_many_reference`, computing the same floating-point operations in the same order,
// so both return identical centers and labels (see the docstring of compress/kmeans.py).
#pragma once

#include <cstdint>
#include <vector>

namespace pocketml {

// One problem: n values (exactly one of x32 / x64 is set) and optional weights (>= 0).
struct KMeans1DProblem {
  const float* x32 = nullptr;
  const double* x64 = nullptr;
  const double* weights = nullptr;
  int64_t n = 0;
};

struct KMeans1DResult {
  std::vector<double> centers;  // ascending, at most k
  int64_t* labels = nullptr;    // n labels, allocated by the caller; or, when set (k <= 256),
  uint8_t* labels8 = nullptr;   // n uint8 labels instead
};

// Solves every problem; problems run in parallel on `threads` threads (a single big problem
// uses them inside). Throws std::invalid_argument on NaN/inf values or invalid weights.
void kmeans_1d_many(const std::vector<KMeans1DProblem>& problems, int64_t k, int64_t max_exact,
                    int threads, std::vector<KMeans1DResult>& results);

}  // namespace pocketml
