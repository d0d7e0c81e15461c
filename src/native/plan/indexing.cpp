#include "plan/indexing.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "plan/views.h"

namespace pocketml {
namespace plan {
namespace {

bool is_index(const Tensor& t) { return t.present() && (t.dtype == DType::I64 || t.dtype == DType::I32); }

// idx's values as int64 in [0, n) (negative ones wrapped where `negative`) into out, in C order;
// false if any is outside the range
// pos [rank] to the next position in C order of an array of `shape`
inline void advance(int64_t* pos, const int64_t* shape, int rank) {
  for (int i = rank; i-- > 0;) {
    if (++pos[i] < shape[i]) return;
    pos[i] = 0;
  }
}

bool read_indices(const Tensor& idx, int64_t n, bool negative, std::vector<int64_t>& out) {
  const int64_t count = idx.numel();
  out.resize(static_cast<size_t>(count));
  int64_t pos[kMaxRank] = {};
  for (int64_t c = 0; c < count; ++c) {
    const char* p = static_cast<const char*>(idx.data);
    for (int i = 0; i < idx.rank; ++i) p += pos[i] * idx.strides[i];
    int64_t v = idx.dtype == DType::I64 ? *reinterpret_cast<const int64_t*>(p) : *reinterpret_cast<const int32_t*>(p);
    if (negative && v < 0) v += n;
    if (v < 0 || v >= n) return false;
    out[static_cast<size_t>(c)] = v;
    advance(pos, idx.shape, idx.rank);
  }
  return true;
}

int norm_axis(int axis, int rank) { return axis < 0 ? axis + rank : axis; }

}  // namespace

bool take_step(int axis, bool negative, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool) {
  if (a.size() != 2 || !a[0].present() || a[0].itemsize <= 0 || !is_index(a[1])) return false;
  const Tensor x = contiguous(a[0], pool);
  const int ax = norm_axis(axis, x.rank);
  if (ax < 0 || ax >= x.rank || x.rank - 1 + a[1].rank > kMaxRank) return false;
  std::vector<int64_t> idx;
  if (!read_indices(a[1], x.shape[ax], negative, idx)) return false;
  int64_t shape[kMaxRank], outer = 1, inner = x.itemsize;
  int rank = 0;
  for (int i = 0; i < ax; ++i) outer *= (shape[rank++] = x.shape[i]);
  for (int i = 0; i < a[1].rank; ++i) shape[rank++] = a[1].shape[i];
  for (int i = ax + 1; i < x.rank; ++i) inner *= (shape[rank++] = x.shape[i]);
  Tensor out = pool.allocate(x.dtype, x.itemsize, rank, shape);
  const char* src = static_cast<const char*>(x.data);
  char* dst = static_cast<char*>(out.data);
  const int64_t n = x.shape[ax], m = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j)
      std::memcpy(dst + (o * m + j) * inner, src + (o * n + idx[static_cast<size_t>(j)]) * inner,
                  static_cast<size_t>(inner));
  outs.push_back(std::move(out));
  return true;
}

bool gather_step(int axis, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool) {
  if (a.size() != 2 || !a[0].present() || a[0].itemsize <= 0 || !is_index(a[1]) || a[1].rank != a[0].rank)
    return false;
  const Tensor& x = a[0];
  const int ax = norm_axis(axis, x.rank);
  if (ax < 0 || ax >= x.rank) return false;
  for (int i = 0; i < x.rank; ++i)
    if (i != ax && a[1].shape[i] > x.shape[i]) return false;
  std::vector<int64_t> idx;
  if (!read_indices(a[1], x.shape[ax], false, idx)) return false;
  Tensor out = pool.allocate(x.dtype, x.itemsize, a[1].rank, a[1].shape);
  char* dst = static_cast<char*>(out.data);
  int64_t pos[kMaxRank] = {};
  for (size_t c = 0; c < idx.size(); ++c) {
    const char* p = static_cast<const char*>(x.data);
    for (int i = 0; i < x.rank; ++i) p += (i == ax ? idx[c] : pos[i]) * x.strides[i];
    std::memcpy(dst + static_cast<int64_t>(c) * x.itemsize, p, static_cast<size_t>(x.itemsize));
    advance(pos, a[1].shape, x.rank);
  }
  outs.push_back(std::move(out));
  return true;
}

namespace {

template <class T>
T combine(int reduce, T a, T b) {
  if constexpr (std::is_same_v<T, int64_t>) {
    const uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);  // NumPy's wrap-around
    switch (reduce) {
      case 1: return static_cast<int64_t>(ua + ub);
      case 2: return static_cast<int64_t>(ua * ub);
      case 3: return a > b ? a : b;
      default: return a < b ? a : b;
    }
  } else {
    switch (reduce) {
      case 1: return a + b;
      case 2: return a * b;
      case 3: return a != a ? a : b != b ? b : a > b ? a : b;  // np.maximum
      default: return a != a ? a : b != b ? b : a < b ? a : b;
    }
  }
}

}  // namespace

bool scatter_step(int axis, int reduce, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool) {
  if (a.size() != 3 || !a[0].present() || a[0].itemsize <= 0 || !is_index(a[1]) || a[1].rank != a[0].rank ||
      !a[2].present() || a[2].dtype != a[0].dtype || a[0].dtype == DType::Other)
    return false;
  const Tensor& x = a[0];
  if (reduce != 0 && x.dtype != DType::F32 && x.dtype != DType::I64) return false;
  const int ax = norm_axis(axis, x.rank);
  if (ax < 0 || ax >= x.rank) return false;
  for (int i = 0; i < x.rank; ++i)
    if (i != ax && a[1].shape[i] > x.shape[i]) return false;
  std::vector<int64_t> idx;
  if (!read_indices(a[1], x.shape[ax], false, idx)) return false;  // out of range: the reference's error
  Tensor u = a[2];
  if (!broadcast_to(u, a[1].rank, a[1].shape)) return false;
  Tensor out = pool.allocate(x.dtype, x.itemsize, x.rank, x.shape);
  copy(x, out);
  int64_t pos[kMaxRank] = {};
  for (size_t c = 0; c < idx.size(); ++c) {
    char* dst = static_cast<char*>(out.data);
    const char* src = static_cast<const char*>(u.data);
    for (int i = 0; i < x.rank; ++i) {
      dst += (i == ax ? idx[c] : pos[i]) * out.strides[i];
      src += pos[i] * u.strides[i];
    }
    if (reduce == 0) {
      std::memcpy(dst, src, static_cast<size_t>(x.itemsize));
    } else if (x.dtype == DType::F32) {
      float v, w;
      std::memcpy(&v, dst, 4);
      std::memcpy(&w, src, 4);
      v = combine(reduce, v, w);
      std::memcpy(dst, &v, 4);
    } else {
      int64_t v, w;
      std::memcpy(&v, dst, 8);
      std::memcpy(&w, src, 8);
      v = combine(reduce, v, w);
      std::memcpy(dst, &v, 8);
    }
    advance(pos, a[1].shape, x.rank);
  }
  outs.push_back(std::move(out));
  return true;
}

namespace {

// Where integer index tensors on consecutive axes read or write x (contiguous): per (outer, b)
// entry, the byte offset into x of an `inner`-byte block; `shape` the indexed result's.
struct IndexGeometry {
  int64_t outer = 1, B = 1, inner = 0, block = 0;
  std::vector<int64_t> offsets;  // outer-major, B entries each: x offsets in bytes without the outer part
  int64_t shape[kMaxRank];
  int rank = 0;
};

bool index_geometry(const std::vector<int>& axes, const Tensor& x, const Tensor* indices, IndexGeometry* g) {
  const int k = static_cast<int>(axes.size());
  const int first = norm_axis(axes[0], x.rank);
  if (first < 0 || first + k > x.rank) return false;
  for (int t = 0; t < k; ++t)
    if (norm_axis(axes[t], x.rank) != first + t || !is_index(indices[t])) return false;  // consecutive integer indices
  // the index tensors broadcast together
  int64_t bshape[kMaxRank];
  int brank = 0;
  for (int t = 0; t < k; ++t) brank = indices[t].rank > brank ? indices[t].rank : brank;
  for (int i = 0; i < brank; ++i) {
    bshape[i] = 1;
    for (int t = 0; t < k; ++t) {
      const Tensor& d = indices[t];
      const int j = i - (brank - d.rank);
      const int64_t v = j >= 0 ? d.shape[j] : 1;
      if (v != 1 && bshape[i] != 1 && v != bshape[i]) return false;  // the reference raises NumPy's error
      if (v != 1) bshape[i] = v;
    }
  }
  if (x.rank - k + brank > kMaxRank) return false;
  std::vector<std::vector<int64_t>> idx(static_cast<size_t>(k));
  for (int t = 0; t < k; ++t) {
    Tensor d = indices[t];
    if (!broadcast_to(d, brank, bshape) || !read_indices(d, x.shape[first + t], true, idx[static_cast<size_t>(t)]))
      return false;
  }
  g->inner = x.itemsize;
  for (int i = 0; i < first; ++i) g->outer *= (g->shape[g->rank++] = x.shape[i]);
  for (int i = 0; i < brank; ++i) g->B *= (g->shape[g->rank++] = bshape[i]);
  for (int i = first + k; i < x.rank; ++i) g->inner *= (g->shape[g->rank++] = x.shape[i]);
  int64_t block = g->inner;  // bytes between consecutive values of each indexed axis, last first
  std::vector<int64_t> stride(static_cast<size_t>(k));
  for (int t = k; t-- > 0;) {
    stride[static_cast<size_t>(t)] = block;
    block *= x.shape[first + t];
  }
  g->block = block;
  g->offsets.assign(static_cast<size_t>(g->B), 0);
  for (int64_t b = 0; b < g->B; ++b)
    for (int t = 0; t < k; ++t)
      g->offsets[static_cast<size_t>(b)] += idx[static_cast<size_t>(t)][static_cast<size_t>(b)] * stride[static_cast<size_t>(t)];
  return true;
}

}  // namespace

bool index_step(const std::vector<int>& axes, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool) {
  const int k = static_cast<int>(axes.size());
  if (k < 1 || a.size() != static_cast<size_t>(k) + 1 || !a[0].present() || a[0].itemsize <= 0) return false;
  const Tensor x = contiguous(a[0], pool);
  IndexGeometry g;
  if (!index_geometry(axes, x, a.data() + 1, &g)) return false;
  Tensor out = pool.allocate(x.dtype, x.itemsize, g.rank, g.shape);
  const char* src = static_cast<const char*>(x.data);
  char* dst = static_cast<char*>(out.data);
  for (int64_t o = 0; o < g.outer; ++o)
    for (int64_t b = 0; b < g.B; ++b)
      std::memcpy(dst + (o * g.B + b) * g.inner, src + o * g.block + g.offsets[static_cast<size_t>(b)],
                  static_cast<size_t>(g.inner));
  outs.push_back(std::move(out));
  return true;
}

bool index_put_step(const std::vector<int>& axes, bool accumulate, std::vector<Tensor>& a, std::vector<Tensor>& outs,
                    BufferPool& pool) {
  const int k = static_cast<int>(axes.size());
  if (k < 1 || a.size() != static_cast<size_t>(k) + 2 || !a[0].present() || !a[1].present() ||
      a[0].dtype == DType::Other || a[1].dtype != a[0].dtype ||
      (accumulate && a[0].dtype != DType::F32 && a[0].dtype != DType::I64))
    return false;
  const Tensor& x = a[0];
  IndexGeometry g;
  std::vector<int> use_axes = axes;
  std::vector<Tensor> positions;  // a boolean mask's true positions, one int64 vector per axis it covers
  if (k == 1 && a[2].present() && a[2].dtype == DType::Bool) {
    Tensor mask = contiguous(a[2], pool);
    const int first = norm_axis(axes[0], x.rank), m = mask.rank;
    if (first < 0 || m < 1 || first + m > x.rank) return false;
    for (int i = 0; i < m; ++i)
      if (mask.shape[i] != x.shape[first + i]) return false;  // the reference's error
    int64_t count = 0;
    const uint8_t* mp = mask.as<const uint8_t>();
    for (int64_t i = 0, n = mask.numel(); i < n; ++i) count += mp[i] != 0;
    use_axes.clear();
    for (int i = 0; i < m; ++i) {
      use_axes.push_back(first + i);
      positions.push_back(pool.allocate(DType::I64, 8, 1, &count));
    }
    int64_t pos[kMaxRank] = {}, c = 0;
    for (int64_t i = 0, n = mask.numel(); i < n; ++i) {
      if (mp[i] != 0) {
        for (int d = 0; d < m; ++d) positions[static_cast<size_t>(d)].as<int64_t>()[c] = pos[d];
        ++c;
      }
      advance(pos, mask.shape, m);
    }
    pool.release(mask);
  }
  if (!index_geometry(use_axes, x, positions.empty() ? a.data() + 2 : positions.data(), &g)) return false;
  Tensor v = a[1];
  if (!broadcast_to(v, g.rank, g.shape)) return false;  // NumPy's error
  v = contiguous(v, pool);
  Tensor out = pool.allocate(x.dtype, x.itemsize, x.rank, x.shape);
  copy(x, out);
  char* dst = static_cast<char*>(out.data);
  const char* src = static_cast<const char*>(v.data);
  for (int64_t o = 0; o < g.outer; ++o)
    for (int64_t b = 0; b < g.B; ++b) {  // in C order, as NumPy: the last of repeated writes stays
      char* d = dst + o * g.block + g.offsets[static_cast<size_t>(b)];
      const char* s = src + (o * g.B + b) * g.inner;
      if (!accumulate) {
        std::memcpy(d, s, static_cast<size_t>(g.inner));
      } else if (x.dtype == DType::F32) {
        for (int64_t i = 0; i < g.inner / 4; ++i) {
          float p, q;
          std::memcpy(&p, d + 4 * i, 4);
          std::memcpy(&q, s + 4 * i, 4);
          p += q;
          std::memcpy(d + 4 * i, &p, 4);
        }
      } else {
        for (int64_t i = 0; i < g.inner / 8; ++i) {
          uint64_t p, q;
          std::memcpy(&p, d + 8 * i, 8);
          std::memcpy(&q, s + 8 * i, 8);
          p += q;  // int64 wraps as NumPy's
          std::memcpy(d + 8 * i, &p, 8);
        }
      }
    }
  pool.release(v);
  for (Tensor& t : positions) pool.release(t);
  outs.push_back(std::move(out));
  return true;
}

bool pad_step(int mode, const std::vector<int64_t>& pads, double value, std::vector<Tensor>& a,
              std::vector<Tensor>& outs, BufferPool& pool) {
  if (a.size() != 1 || !a[0].present() || a[0].itemsize <= 0 || a[0].rank < 1 ||
      pads.size() != static_cast<size_t>(2 * a[0].rank))
    return false;
  if (mode == 0 && value != 0.0 && a[0].dtype != DType::F32) return false;  // the reference converts it
  const Tensor x = contiguous(a[0], pool);
  const int r = x.rank;
  int64_t shape[kMaxRank];
  std::vector<std::vector<int64_t>> src(static_cast<size_t>(r));  // per axis: output -> input index, -1: fill
  for (int i = 0; i < r; ++i) {
    const int64_t n = x.shape[i], lo = pads[2 * i], hi = pads[2 * i + 1], m = n + lo + hi;
    if (m < 0) return false;
    if (mode != 0 && (lo < 0 || hi < 0 || (mode == 1 && (lo >= n || hi >= n) && (lo || hi)) ||
                      (mode == 3 && (lo > n || hi > n)) || (mode == 2 && n == 0 && (lo || hi))))
      return false;  // the reference says what is wrong
    shape[i] = m;
    std::vector<int64_t>& map = src[static_cast<size_t>(i)];
    map.resize(static_cast<size_t>(m));
    for (int64_t o = 0; o < m; ++o) {
      int64_t j = o - lo;
      if (j < 0 || j >= n) {
        if (mode == 0) j = -1;
        else if (mode == 1) j = j < 0 ? -j : 2 * (n - 1) - j;
        else if (mode == 2) j = j < 0 ? 0 : n - 1;
        else j = ((j % n) + n) % n;
      }
      map[static_cast<size_t>(o)] = j;
    }
  }
  Tensor out = pool.allocate(x.dtype, x.itemsize, r, shape);
  const int64_t item = x.itemsize, last = shape[r - 1];
  unsigned char fill[8] = {};
  if (x.dtype == DType::F32) {
    const float f = static_cast<float>(value);
    std::memcpy(fill, &f, 4);
  }
  int64_t in_stride[kMaxRank];  // bytes, C order
  int64_t st = item;
  for (int i = r; i-- > 0;) {
    in_stride[i] = st;
    st *= x.shape[i];
  }
  const char* base = static_cast<const char*>(x.data);
  char* dst = static_cast<char*>(out.data);
  int64_t rows = 1;
  for (int i = 0; i < r - 1; ++i) rows *= shape[i];
  int64_t pos[kMaxRank] = {};
  const std::vector<int64_t>& lmap = src[static_cast<size_t>(r - 1)];
  for (int64_t row = 0; row < rows && last > 0; ++row) {
    int64_t off = 0;
    bool filled = false;
    for (int i = 0; i < r - 1; ++i) {
      const int64_t j = src[static_cast<size_t>(i)][static_cast<size_t>(pos[i])];
      if (j < 0) filled = true;
      else off += j * in_stride[i];
    }
    for (int64_t o = 0; o < last; ++o, dst += item) {
      const int64_t j = lmap[static_cast<size_t>(o)];
      if (filled || j < 0) std::memcpy(dst, fill, static_cast<size_t>(item));
      else std::memcpy(dst, base + off + j * item, static_cast<size_t>(item));
    }
    advance(pos, shape, r - 1);
  }
  outs.push_back(std::move(out));
  return true;
}

bool cumsum_step(int axis, bool product, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool) {
  if (a.size() != 1 || !a[0].present() || (a[0].dtype != DType::I64 && a[0].dtype != DType::F32) || a[0].rank < 1)
    return false;
  const Tensor x = contiguous(a[0], pool);
  const int ax = norm_axis(axis, x.rank);
  if (ax < 0 || ax >= x.rank) return false;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; ++i) outer *= x.shape[i];
  for (int i = ax + 1; i < x.rank; ++i) inner *= x.shape[i];
  const int64_t n = x.shape[ax];
  Tensor out = pool.allocate(x.dtype, x.itemsize, x.rank, x.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * n * inner + i;
      if (x.dtype == DType::I64) {
        const int64_t* s = x.as<const int64_t>();
        int64_t* d = out.as<int64_t>();
        uint64_t acc = product ? 1 : 0;  // wraps around as NumPy's int64 does
        for (int64_t j = 0; j < n; ++j) {
          const uint64_t v = static_cast<uint64_t>(s[base + j * inner]);
          acc = product ? acc * v : acc + v;
          d[base + j * inner] = static_cast<int64_t>(acc);
        }
      } else {
        const float* s = x.as<const float>();
        float* d = out.as<float>();
        double acc = product ? 1.0 : 0.0;
        for (int64_t j = 0; j < n; ++j) {
          acc = product ? acc * s[base + j * inner] : acc + s[base + j * inner];
          d[base + j * inner] = static_cast<float>(acc);
        }
      }
    }
  outs.push_back(std::move(out));
  return true;
}

namespace {

template <class T>
void sort_rows(const T* x, int64_t outer, int64_t n, int64_t inner, bool descending, int64_t k, T* values,
               int64_t* positions) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  const auto nan = [](T v) { return v != v; };
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T* row = x + o * n * inner + i;
      for (int64_t j = 0; j < n; ++j) order[static_cast<size_t>(j)] = j;
      const auto at = [&](int64_t j) { return row[j * inner]; };
      if (descending)
        std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) {
          return (at(p) > at(q)) || (nan(at(p)) && !nan(at(q)));
        });
      else
        std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) {
          return (at(p) < at(q)) || (!nan(at(p)) && nan(at(q)));
        });
      for (int64_t j = 0; j < k; ++j) {
        const int64_t dst = (o * k + j) * inner + i;
        values[dst] = at(order[static_cast<size_t>(j)]);
        positions[dst] = order[static_cast<size_t>(j)];
      }
    }
}

}  // namespace

bool sort_step(int axis, bool descending, int64_t k, std::vector<Tensor>& a, std::vector<Tensor>& outs,
               BufferPool& pool) {
  if (a.size() != 1 || !a[0].present() || (a[0].dtype != DType::F32 && a[0].dtype != DType::I64) || a[0].rank < 1)
    return false;
  const Tensor x = contiguous(a[0], pool);
  const int ax = norm_axis(axis, x.rank);
  if (ax < 0 || ax >= x.rank) return false;
  const int64_t n = x.shape[ax];
  if (k < 0) k = n;
  if (k > n) return false;  // the reference's error
  int64_t outer = 1, inner = 1, shape[kMaxRank];
  for (int i = 0; i < x.rank; ++i) {
    if (i < ax) outer *= x.shape[i];
    if (i > ax) inner *= x.shape[i];
    shape[i] = i == ax ? k : x.shape[i];
  }
  Tensor values = pool.allocate(x.dtype, x.itemsize, x.rank, shape);
  Tensor positions = pool.allocate(DType::I64, 8, x.rank, shape);
  if (x.dtype == DType::F32)
    sort_rows(x.as<const float>(), outer, n, inner, descending, k, values.as<float>(), positions.as<int64_t>());
  else
    sort_rows(x.as<const int64_t>(), outer, n, inner, descending, k, values.as<int64_t>(), positions.as<int64_t>());
  outs.push_back(std::move(values));
  outs.push_back(std::move(positions));
  return true;
}

bool tile_step(const std::vector<int64_t>& reps, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool) {
  if (a.size() != 1 || !a[0].present() || a[0].dtype == DType::Other) return false;
  const int rank = a[0].rank;
  if (static_cast<int>(reps.size()) != rank || rank == 0) return false;  // the reference's error
  int64_t shape[kMaxRank];
  for (int i = 0; i < rank; ++i) {
    if (reps[i] < 0) return false;
    shape[i] = a[0].shape[i] * reps[i];
  }
  const Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(x.dtype, x.itemsize, rank, shape);
  const int64_t total = out.numel();
  if (total > 0) {
    const size_t row = static_cast<size_t>(x.shape[rank - 1]) * x.itemsize;  // one input row
    const int64_t rows = total / shape[rank - 1];
    const char* src = static_cast<const char*>(x.data);
    char* dst = static_cast<char*>(out.data);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t rest = r, in_row = 0, stride = 1;
      for (int i = rank - 2; i >= 0; --i) {  // the output row's coordinates, wrapped into x's
        in_row += (rest % shape[i]) % x.shape[i] * stride;
        rest /= shape[i];
        stride *= x.shape[i];
      }
      for (int64_t k = 0; k < reps[rank - 1]; ++k, dst += row) std::memcpy(dst, src + in_row * row, row);
    }
  }
  outs.push_back(std::move(out));
  return true;
}

bool tri_step(int64_t k, bool upper, std::vector<Tensor>& a, std::vector<Tensor>& outs, BufferPool& pool) {
  if (a.size() != 1 || !a[0].present() || a[0].dtype == DType::Other || a[0].rank < 2) return false;
  const Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(x.dtype, x.itemsize, x.rank, x.shape);
  const int64_t R = x.shape[x.rank - 2], C = x.shape[x.rank - 1], mats = R * C > 0 ? x.numel() / (R * C) : 0;
  const size_t item = static_cast<size_t>(x.itemsize);
  const char* src = static_cast<const char*>(x.data);
  char* dst = static_cast<char*>(out.data);
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < R; ++i) {
      const size_t off = static_cast<size_t>((m * R + i) * C) * item;
      // kept: j - i >= k (triu) or j - i <= k (tril)
      const int64_t lo = upper ? std::min(std::max<int64_t>(i + k, 0), C) : 0;
      const int64_t hi = upper ? C : std::min(std::max<int64_t>(i + k + 1, 0), C);
      std::memset(dst + off, 0, static_cast<size_t>(C) * item);
      if (hi > lo) std::memcpy(dst + off + lo * item, src + off + lo * item, static_cast<size_t>(hi - lo) * item);
    }
  outs.push_back(std::move(out));
  return true;
}

}  // namespace plan
}  // namespace pocketml
