#include "plan/views.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "core/pool.h"

namespace pocketml {
namespace plan {
namespace {

std::string shape_str(const int64_t* s, int n) {
  std::string r = "(";
  for (int i = 0; i < n; ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (n == 1 ? ",)" : ")");
}

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

int64_t axis(int64_t a, int rank) {
  if (a < -rank || a >= rank)
    fail("axis " + std::to_string(a) + " is out of bounds for array of dimension " +
         std::to_string(rank));
  return a < 0 ? a + rank : a;
}

// NumPy's no-copy reshape (C order): strides for `shape` over t's bytes, or false.
bool view_strides(const Tensor& t, const int64_t* shape, int n, int64_t* out) {
  int64_t od[kMaxRank], os[kMaxRank];
  int no = 0;
  for (int i = 0; i < t.rank; ++i)
    if (t.shape[i] != 1) od[no] = t.shape[i], os[no++] = t.strides[i];
  int oi = 0, oj = 1, ni = 0, nj = 1;
  while (ni < n && oi < no) {
    int64_t np_ = shape[ni], op = od[oi];
    while (np_ != op) {
      if (np_ < op) {
        if (nj >= n) return false;
        np_ *= shape[nj++];
      } else {
        if (oj >= no) return false;
        op *= od[oj++];
      }
    }
    for (int k = oi; k < oj - 1; ++k)
      if (os[k] != od[k + 1] * os[k + 1]) return false;
    out[nj - 1] = os[oj - 1];
    for (int k = nj - 1; k > ni; --k) out[k - 1] = out[k] * shape[k];
    ni = nj++;
    oi = oj++;
  }
  int64_t last = ni > 0 ? out[ni - 1] : t.itemsize;
  for (int k = ni; k < n; ++k) out[k] = last;  // trailing size-1 axes
  return true;
}

}  // namespace

void reshape(Tensor& t, const int64_t* shape, int n, BufferPool& pool) {
  if (n > kMaxRank) fail("reshape: more than " + std::to_string(kMaxRank) + " dimensions");
  int64_t s[kMaxRank];
  int unknown = -1;
  int64_t known = 1;
  for (int i = 0; i < n; ++i) {
    s[i] = shape[i];
    if (s[i] == -1) {
      if (unknown >= 0) fail("can only specify one unknown dimension");
      unknown = i;
    } else if (s[i] < 0) {
      fail("negative dimensions not allowed");
    } else {
      known *= s[i];
    }
  }
  const int64_t size = t.numel();
  if (unknown >= 0) {
    if (known == 0 || size % known) fail("cannot reshape array of size " + std::to_string(size) +
                                         " into shape " + shape_str(shape, n));
    s[unknown] = size / known;
  } else if (known != size) {
    fail("cannot reshape array of size " + std::to_string(size) + " into shape " +
         shape_str(shape, n));
  }
  t.foreign = false;
  int64_t strides[kMaxRank];
  if (size == 0 || t.contiguous()) {
    t.rank = n;
    for (int i = 0; i < n; ++i) t.shape[i] = s[i];
    t.set_contiguous_strides();
    return;
  }
  if (!view_strides(t, s, n, strides)) {
    t = contiguous(t, pool);
    t.rank = n;
    for (int i = 0; i < n; ++i) t.shape[i] = s[i];
    t.set_contiguous_strides();
    return;
  }
  t.rank = n;
  for (int i = 0; i < n; ++i) t.shape[i] = s[i], t.strides[i] = strides[i];
}

void transpose(Tensor& t, const int64_t* perm, int n) {
  if (n != t.rank) fail("axes don't match array");
  int64_t shape[kMaxRank], strides[kMaxRank];
  bool seen[kMaxRank] = {};
  for (int i = 0; i < n; ++i) {
    const int64_t a = axis(perm[i], t.rank);
    if (seen[a]) fail("repeated axis in transpose");
    seen[a] = true;
    shape[i] = t.shape[a];
    strides[i] = t.strides[a];
  }
  for (int i = 0; i < n; ++i) t.shape[i] = shape[i], t.strides[i] = strides[i];
  t.foreign = false;
}

void squeeze(Tensor& t, const int64_t* axes, int n) {
  bool drop[kMaxRank] = {};
  for (int i = 0; i < n; ++i) {
    const int64_t a = axis(axes[i], t.rank);
    if (drop[a]) fail("repeated axis");
    if (t.shape[a] != 1) fail("cannot select an axis to squeeze out which has size not equal to one");
    drop[a] = true;
  }
  int r = 0;
  for (int i = 0; i < t.rank; ++i)
    if (!drop[i]) t.shape[r] = t.shape[i], t.strides[r++] = t.strides[i];
  t.rank = r;
  t.foreign = false;
}

void expand_dims(Tensor& t, const int64_t* axes, int n) {
  const int rank = t.rank + n;
  if (rank > kMaxRank) fail("expand_dims: more than " + std::to_string(kMaxRank) + " dimensions");
  bool added[kMaxRank] = {};
  for (int i = 0; i < n; ++i) {
    const int64_t a = axis(axes[i], rank);
    if (added[a]) fail("repeated axis");
    added[a] = true;
  }
  int64_t shape[kMaxRank], strides[kMaxRank];
  for (int i = 0, j = 0; i < rank; ++i) {
    if (added[i]) {
      shape[i] = 1, strides[i] = 0;
    } else {
      shape[i] = t.shape[j], strides[i] = t.strides[j];
      ++j;
    }
  }
  t.rank = rank;
  for (int i = 0; i < rank; ++i) t.shape[i] = shape[i], t.strides[i] = strides[i];
  t.foreign = false;
}

void expand(Tensor& t, const int64_t* shape, int n) {
  if (n < t.rank) fail("expand: target has lower rank than the input");
  if (n > kMaxRank) fail("expand: more than " + std::to_string(kMaxRank) + " dimensions");
  int64_t s[kMaxRank];
  const int lead = n - t.rank;
  for (int i = 0; i < n; ++i) {
    if (i < lead) {
      if (shape[i] < 0) fail("expand: new leading dimension " + std::to_string(shape[i]) + " must be >= 0");
      s[i] = shape[i];
    } else {
      const int64_t d = t.shape[i - lead];
      if (shape[i] == -1 || shape[i] == d)
        s[i] = d;
      else if (d == 1 && shape[i] >= 0)
        s[i] = shape[i];
      else
        fail("expand: cannot expand " + shape_str(t.shape, t.rank) + " to " + shape_str(shape, n));
    }
  }
  if (!broadcast_to(t, n, s)) fail("expand: cannot expand");
}

void slice(Tensor& t, const int64_t* axes, const int64_t* begin, const int64_t* end,
           const int64_t* step, int n) {
  bool seen[kMaxRank] = {};
  char* data = static_cast<char*>(t.data);
  for (int i = 0; i < n; ++i) {
    const int64_t a = axis(axes[i], t.rank);
    if (seen[a]) fail("repeated axis in slice");
    seen[a] = true;
    const int64_t len = t.shape[a], s = step[i];
    if (s == 0) fail("slice step cannot be zero");
    int64_t b = begin[i], e = end[i];  // Python's PySlice_AdjustIndices
    if (b < 0) {
      b += len;
      if (b < 0) b = s < 0 ? -1 : 0;
    } else if (b >= len) {
      b = s < 0 ? len - 1 : len;
    }
    if (e < 0) {
      e += len;
      if (e < 0) e = s < 0 ? -1 : 0;
    } else if (e >= len) {
      e = s < 0 ? len - 1 : len;
    }
    int64_t count = 0;
    if (s < 0) {
      if (e < b) count = (b - e - 1) / (-s) + 1;
    } else if (b < e) {
      count = (e - b - 1) / s + 1;
    }
    if (count > 0) data += b * t.strides[a];
    t.shape[a] = count;
    t.strides[a] *= s;
  }
  t.data = data;
  t.foreign = false;
}

bool broadcast_to(Tensor& t, int rank, const int64_t* shape) {
  if (rank < t.rank || rank > kMaxRank) return false;
  const int lead = rank - t.rank;
  int64_t strides[kMaxRank];
  for (int i = 0; i < rank; ++i) {
    if (i < lead) {
      strides[i] = 0;
      continue;
    }
    const int64_t d = t.shape[i - lead];
    if (d == shape[i])
      strides[i] = d == 1 ? 0 : t.strides[i - lead];
    else if (d == 1)
      strides[i] = 0;
    else
      return false;
  }
  t.rank = rank;
  for (int i = 0; i < rank; ++i) t.shape[i] = shape[i], t.strides[i] = strides[i];
  t.foreign = false;
  return true;
}

namespace {

template <class T>
void copy_row(const char* s, int64_t ss, char* d, int64_t ds, int64_t n) {
  for (int64_t i = 0; i < n; ++i, s += ss, d += ds) std::memcpy(d, s, sizeof(T));
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  const int rank = dst.rank;
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int w = dst.itemsize;
  if (rank == 0) {
    std::memcpy(dst.data, src.data, w);
    return;
  }
  const int64_t inner = dst.shape[rank - 1], ss = src.strides[rank - 1], ds = dst.strides[rank - 1];
  int64_t idx[kMaxRank] = {};
  const char* s = static_cast<const char*>(src.data);
  char* d = static_cast<char*>(dst.data);
  for (int64_t done = 0; done < n; done += inner) {
    if (ss == w && ds == w) {
      std::memcpy(d, s, static_cast<size_t>(inner * w));
    } else {
      switch (w) {
        case 1: copy_row<uint8_t>(s, ss, d, ds, inner); break;
        case 2: copy_row<uint16_t>(s, ss, d, ds, inner); break;
        case 4: copy_row<uint32_t>(s, ss, d, ds, inner); break;
        case 8: copy_row<uint64_t>(s, ss, d, ds, inner); break;
        default:
          for (int64_t i = 0; i < inner; ++i) std::memcpy(d + i * ds, s + i * ss, w);
      }
    }
    for (int a = rank - 2; a >= 0; --a) {  // next row: odometer over the outer axes
      s += src.strides[a];
      d += dst.strides[a];
      if (++idx[a] < dst.shape[a]) break;
      s -= src.strides[a] * dst.shape[a];
      d -= dst.strides[a] * dst.shape[a];
      idx[a] = 0;
    }
  }
}

void copy(const Tensor& src, const Tensor& dst, int threads) {
  // (one thread copies 2.3 MB of a [1500, 6, 64] -> [6, 1500, 64] transpose in 0.14 ms)
  constexpr int64_t kParallelBytes = int64_t(1) << 20;
  int a = 0;
  while (a < dst.rank && dst.shape[a] == 1) ++a;
  if (threads <= 0) threads = default_threads();
  if (threads <= 1 || a == dst.rank || dst.numel() * dst.itemsize < kParallelBytes) return copy(src, dst);
  parallel_for(dst.shape[a], 1, threads, [&](int64_t i0, int64_t i1) {
    Tensor s = src, d = dst;
    s.data = static_cast<char*>(src.data) + i0 * src.strides[a];
    d.data = static_cast<char*>(dst.data) + i0 * dst.strides[a];
    s.shape[a] = d.shape[a] = i1 - i0;
    copy(s, d);
  });
}

Tensor contiguous(const Tensor& t, BufferPool& pool) {
  if (t.contiguous()) return t;
  Tensor c = pool.allocate(t.dtype, t.itemsize, t.rank, t.shape);
  copy(t, c);
  return c;
}

}  // namespace plan
}  // namespace pocketml
