#include <cstring>

#include "kernels/elementwise/elementwise.h"

namespace pocketml {
namespace elementwise {
namespace {

constexpr int kMaxRank = 8;

// Calls f(off, n, step) for each row of the last axis: off[k] the byte offset of operand k's
// first element, step[k] its byte stride along the row, n the row's length (rank 0: one element).
template <int N, class F>
void rows(const int64_t* shape, int rank, const int64_t* const (&st)[N], F&& f) {
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) total *= shape[i];
  if (total == 0) return;
  int64_t off[N] = {}, step[N] = {};
  if (rank == 0) return f(off, int64_t(1), step);
  for (int k = 0; k < N; ++k) step[k] = st[k][rank - 1];
  const int64_t n = shape[rank - 1];
  int64_t idx[kMaxRank] = {};
  for (int64_t o = 0; o < total; o += n) {
    f(off, n, step);
    for (int ax = rank - 2; ax >= 0; --ax) {  // the next row: an odometer over the outer axes
      for (int k = 0; k < N; ++k) off[k] += st[k][ax];
      if (++idx[ax] < shape[ax]) break;
      for (int k = 0; k < N; ++k) off[k] -= st[k][ax] * shape[ax];
      idx[ax] = 0;
    }
  }
}

template <class T>
inline T at(const void* base, int64_t off) {
  T v;
  std::memcpy(&v, static_cast<const char*>(base) + off, sizeof(T));
  return v;
}

template <class T>
inline bool cmp(CompareOp op, T x, T y) {
  switch (op) {
    case CompareOp::Eq: return x == y;
    case CompareOp::Ne: return x != y;
    case CompareOp::Lt: return x < y;
    case CompareOp::Le: return x <= y;
    case CompareOp::Gt: return x > y;
    case CompareOp::Ge: return x >= y;
  }
  return false;
}

template <class T>
void compare_as(CompareOp op, const void* a, const int64_t* sa, const void* b, const int64_t* sb, uint8_t* out,
                const int64_t* shape, int rank) {
  const int64_t* st[2] = {sa, sb};
  rows<2>(shape, rank, st, [&](const int64_t* off, int64_t n, const int64_t* step) {
    for (int64_t i = 0; i < n; ++i) *out++ = cmp(op, at<T>(a, off[0] + i * step[0]), at<T>(b, off[1] + i * step[1]));
  });
}

}  // namespace

void compare(CompareOp op, Type t, const void* a, const int64_t* sa, const void* b, const int64_t* sb,
             uint8_t* out, const int64_t* shape, int rank) {
  switch (t) {
    case Type::F32: return compare_as<float>(op, a, sa, b, sb, out, shape, rank);
    case Type::I64: return compare_as<int64_t>(op, a, sa, b, sb, out, shape, rank);
    case Type::Bool: return compare_as<uint8_t>(op, a, sa, b, sb, out, shape, rank);  // 0 or 1
    default: return;
  }
}

void logical(LogicalOp op, const uint8_t* a, const int64_t* sa, const uint8_t* b, const int64_t* sb,
             uint8_t* out, const int64_t* shape, int rank) {
  const int64_t* st[2] = {sa, sb};
  rows<2>(shape, rank, st, [&](const int64_t* off, int64_t n, const int64_t* step) {
    for (int64_t i = 0; i < n; ++i) {
      const bool x = a[off[0] + i * step[0]] != 0, y = b[off[1] + i * step[1]] != 0;
      *out++ = op == LogicalOp::And ? (x && y) : op == LogicalOp::Or ? (x || y) : (x != y);
    }
  });
}

void binary_i64(BinaryOp op, const int64_t* a, const int64_t* sa, const int64_t* b, const int64_t* sb,
                int64_t* out, const int64_t* shape, int rank) {
  const int64_t* st[2] = {sa, sb};
  rows<2>(shape, rank, st, [&](const int64_t* off, int64_t n, const int64_t* step) {
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t x = static_cast<uint64_t>(at<int64_t>(a, off[0] + i * step[0]));
      const uint64_t y = static_cast<uint64_t>(at<int64_t>(b, off[1] + i * step[1]));
      const uint64_t r = op == BinaryOp::Add ? x + y : op == BinaryOp::Sub ? x - y : x * y;  // wraps
      *out++ = static_cast<int64_t>(r);
    }
  });
}

void where(const uint8_t* c, const int64_t* sc, const void* x, const int64_t* sx, const void* y,
           const int64_t* sy, int itemsize, void* out, const int64_t* shape, int rank) {
  const int64_t* st[3] = {sc, sx, sy};
  char* o = static_cast<char*>(out);
  rows<3>(shape, rank, st, [&](const int64_t* off, int64_t n, const int64_t* step) {
    for (int64_t i = 0; i < n; ++i, o += itemsize) {
      const bool pick = c[off[0] + i * step[0]] != 0;
      const char* src = pick ? static_cast<const char*>(x) + off[1] + i * step[1]
                             : static_cast<const char*>(y) + off[2] + i * step[2];
      std::memcpy(o, src, static_cast<size_t>(itemsize));
    }
  });
}

}  // namespace elementwise
}  // namespace pocketml
