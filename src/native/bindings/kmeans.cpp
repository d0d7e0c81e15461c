// Bindings of the compression searches: the 1-D k-means (compress/kmeans.h,
// _native.kmeans_1d_many) and the symmetric grid search (compress/search.h, _native.fit_symmetric).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bindings/bindings.h"
#include "compress/kmeans.h"
#include "compress/search.h"
#include "core/buffer.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;

using Values = nb::ndarray<nb::ro, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Weights = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// A NumPy array owning `data`.
template <class T>
nb::ndarray<nb::numpy, T, nb::ndim<1>> owned(pocketml::Buffer<T> data, size_t n) {
  T* p = data.release();
  nb::capsule owner(p, [](void* q) noexcept { std::free(q); });
  return nb::ndarray<nb::numpy, T, nb::ndim<1>>(p, {n}, owner);
}

nb::list kmeans_1d_many(const std::vector<Values>& values,
                        const std::vector<std::optional<Weights>>& weights, int64_t k,
                        int64_t max_exact, int threads, bool uint8_labels) {
  if (values.size() != weights.size())
    throw std::invalid_argument("kmeans_1d_many: one weights entry (or None) per problem");
  size_t np = values.size();
  std::vector<pocketml::KMeans1DProblem> problems(np);
  std::vector<pocketml::KMeans1DResult> results(np);
  std::vector<pocketml::Buffer<int64_t>> labels(np);
  std::vector<pocketml::Buffer<uint8_t>> labels8(np);
  for (size_t i = 0; i < np; ++i) {
    const Values& v = values[i];
    auto& p = problems[i];
    p.n = static_cast<int64_t>(v.shape(0));
    if (v.dtype() == nb::dtype<float>())
      p.x32 = static_cast<const float*>(v.data());
    else if (v.dtype() == nb::dtype<double>())
      p.x64 = static_cast<const double*>(v.data());
    else
      throw nb::type_error("kmeans_1d_many: values must be float32 or float64 arrays");
    if (weights[i]) {
      if (static_cast<int64_t>(weights[i]->shape(0)) != p.n)
        throw std::invalid_argument("weights must have one entry per value");
      p.weights = weights[i]->data();
    }
    if (uint8_labels) {
      labels8[i] = pocketml::allocate<uint8_t>(p.n);
      results[i].labels8 = labels8[i].get();
    } else {
      labels[i] = pocketml::allocate<int64_t>(p.n);
      results[i].labels = labels[i].get();
    }
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  {
    nb::gil_scoped_release release;
    pocketml::kmeans_1d_many(problems, k, max_exact, threads, results);
  }
  nb::list out;
  for (size_t i = 0; i < np; ++i) {
    size_t nc = results[i].centers.size(), n = static_cast<size_t>(problems[i].n);
    pocketml::Buffer<double> c = pocketml::allocate<double>(static_cast<int64_t>(nc));
    std::copy(results[i].centers.begin(), results[i].centers.end(), c.get());
    nb::object lab = uint8_labels ? nb::cast(owned(std::move(labels8[i]), n))
                                  : nb::cast(owned(std::move(labels[i]), n));
    out.append(nb::make_tuple(owned(std::move(c), nc), lab));
  }
  return out;
}

// A NumPy (rows, L) float32 array owning `data`.
nb::ndarray<nb::numpy, float, nb::ndim<2>> owned_rows(pocketml::Buffer<float> data, int64_t rows, int64_t L) {
  float* p = data.release();
  nb::capsule owner(p, [](void* q) noexcept { std::free(q); });
  return nb::ndarray<nb::numpy, float, nb::ndim<2>>(p, {static_cast<size_t>(rows), static_cast<size_t>(L)}, owner);
}

using Rows = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Factors = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

nb::tuple fit_symmetric(const Rows& w, const Rows& hw, int qmin, int qmax, const Factors& factors, int refine,
                        int threads) {
  const int64_t rows = static_cast<int64_t>(w.shape(0)), L = static_cast<int64_t>(w.shape(1));
  if (hw.shape(0) != w.shape(0) || hw.shape(1) != w.shape(1))
    throw std::invalid_argument("fit_symmetric: hw must have w's shape");
  if (qmin > -1 || qmax < 1) throw std::invalid_argument("fit_symmetric: qmin <= -1 and qmax >= 1");
  if (refine < 0 || factors.shape(0) > (1u << 20)) throw std::invalid_argument("fit_symmetric: bad factors/refine");
  pocketml::Buffer<float> scale = pocketml::allocate<float>(rows), codes = pocketml::allocate<float>(rows * L);
  {
    nb::gil_scoped_release release;
    pocketml::fit_symmetric(w.data(), hw.data(), rows, L, qmin, qmax, factors.data(),
                            static_cast<int>(factors.shape(0)), refine, scale.get(), codes.get(), threads);
  }
  return nb::make_tuple(owned(std::move(scale), static_cast<size_t>(rows)), owned_rows(std::move(codes), rows, L));
}

nb::tuple fit_affine(const Rows& w, const Rows& hw, int levels, const Factors& spans, int threads) {
  const int64_t rows = static_cast<int64_t>(w.shape(0)), L = static_cast<int64_t>(w.shape(1));
  if (hw.shape(0) != w.shape(0) || hw.shape(1) != w.shape(1))
    throw std::invalid_argument("fit_affine: hw must have w's shape");
  if (levels < 1 || spans.shape(0) > (1u << 20)) throw std::invalid_argument("fit_affine: levels >= 1");
  pocketml::Buffer<float> scale = pocketml::allocate<float>(rows), offset = pocketml::allocate<float>(rows);
  pocketml::Buffer<float> codes = pocketml::allocate<float>(rows * L);
  {
    nb::gil_scoped_release release;
    pocketml::fit_affine(w.data(), hw.data(), rows, L, levels, spans.data(), static_cast<int>(spans.shape(0)),
                         scale.get(), offset.get(), codes.get(), threads);
  }
  return nb::make_tuple(owned(std::move(scale), static_cast<size_t>(rows)),
                        owned(std::move(offset), static_cast<size_t>(rows)), owned_rows(std::move(codes), rows, L));
}

}  // namespace

void init_kmeans(nb::module_& m) {
  m.def("fit_affine", &fit_affine, "w"_a, "hw"_a, "levels"_a, "spans"_a, "threads"_a = 0,
        R"doc(pocketml.compress.search.fit_affine's search (w, hw: rows x L float32 C-contiguous)
-> (scale, offset float32 (rows,), codes float32 (rows, L) in [0, levels]), bit-identical to the
NumPy reference. The GIL is released.)doc");
  m.def("fit_symmetric", &fit_symmetric, "w"_a, "hw"_a, "qmin"_a, "qmax"_a, "factors"_a, "refine"_a,
        "threads"_a = 0,
        R"doc(pocketml.compress.search.fit_symmetric's search (w, hw: rows x L float32 C-contiguous,
hw its weights; factors float64; refine rounds) -> (scale float32 (rows,), codes float32 (rows, L)),
bit-identical to the NumPy reference. The GIL is released.)doc");
  m.def("kmeans_1d_many", &kmeans_1d_many, "values"_a, "weights"_a, "k"_a, "max_exact"_a,
        "threads"_a = 0, "uint8_labels"_a = false,
        R"doc(Optimal 1-D k-means of several independent problems.

values: list of 1-D contiguous float32/float64 arrays; weights: a list with, per problem, None or
a 1-D float64 array of non-negative weights; k >= 1; max_exact >= 2 (the exact DP runs over at
most this many distinct values, binned DP + Lloyd above); threads (0: all cores) run the problems
in parallel, or the inside of a single big one. The GIL is released.

Returns a list of (centers float64 ascending, labels int64, or uint8 with uint8_labels and
k <= 256) per problem, bit-identical to
pocketml.compress.kmeans._kmeans_1d_many_reference. Raises ValueError on NaN/inf values or
negative/non-finite weights.)doc");
}

}  // namespace pocketml::bindings
