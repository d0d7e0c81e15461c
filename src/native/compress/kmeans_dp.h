// The exact k-segment DP of 1-D k-means (kmeans._dp_batch for one problem), bit-identical to the
// reference: kmeans.cpp solves small problems with it directly and binned big ones through
// dp_on_bins.
#pragma once

#include <cstdint>
#include <vector>

namespace pocketml {

struct Sum3 {
  double v[3];  // weight, w*x, w*x^2 of a point or bin
};

// Exact k-segment DP over m > k >= 2 points with weights a, sums b (w*x) and c (w*x^2); writes
// the k+1 boundaries into the points to B.
void dp_exact(const double* a, const double* b, const double* c, int64_t m, int64_t k, int64_t* B);

// The DP over bins with sums agg (edges into the points); B maps back to the points.
void dp_on_bins(const std::vector<Sum3>& agg, const std::vector<int64_t>& edges, int64_t k, int64_t* B);

}  // namespace pocketml
