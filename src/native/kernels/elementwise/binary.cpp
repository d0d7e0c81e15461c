#include <cmath>
#include <cstdint>

#include "core/pool.h"
#include "kernels/elementwise/elementwise.h"

namespace pocketml {
namespace elementwise {
namespace {

constexpr int kMaxRank = 8;
constexpr int64_t kMinParallel = int64_t(1) << 17;  // elements before a second thread pays off

template <BinaryOp kOp>
inline float apply(float x, float y) {
  switch (kOp) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Max: return x != x ? x : y != y ? y : x > y ? x : y;
    case BinaryOp::Min: return x != x ? x : y != y ? y : x < y ? x : y;
    case BinaryOp::Pow: return static_cast<float>(std::pow(static_cast<double>(x), static_cast<double>(y)));
    case BinaryOp::Fmod: return std::fmod(x, y);
    case BinaryOp::Remainder: {
      const float m = std::fmod(x, y);
      return m != 0.0f && ((y < 0.0f) != (m < 0.0f)) ? m + y : m;
    }
  }
  return 0.0f;
}

// one row of n outputs; the common stride pairs get loops the compiler vectorises
template <BinaryOp kOp>
void row(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float y = *b;
    for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp>(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const float x = *a;
    for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp>(x, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp>(a[i * sa], b[i * sb]);
  }
}

template <BinaryOp kOp>
void run(const float* a, const int64_t* sa, const float* b, const int64_t* sb, float* out,
         const int64_t* shape, int rank, int threads) {
  // merge axes that both operands step through as one (fewer, longer rows)
  int64_t s[kMaxRank], xa[kMaxRank], xb[kMaxRank];
  int r = 0;
  for (int i = 0; i < rank; ++i) {
    if (shape[i] == 1) continue;
    if (r > 0 && xa[r - 1] == sa[i] * shape[i] && xb[r - 1] == sb[i] * shape[i]) {
      s[r - 1] *= shape[i];
      xa[r - 1] = sa[i];
      xb[r - 1] = sb[i];
      continue;
    }
    s[r] = shape[i], xa[r] = sa[i], xb[r] = sb[i];
    ++r;
  }
  if (r == 0) {
    *out = apply<kOp>(*a, *b);
    return;
  }
  const int64_t inner = s[r - 1];
  int64_t rows = 1;
  for (int i = 0; i < r - 1; ++i) rows *= s[i];
  const int t = rows * inner >= kMinParallel ? threads : 1;
  parallel_for(rows, (rows + 7) / 8, t, [&](int64_t r0, int64_t r1) {
    for (int64_t q = r0; q < r1; ++q) {
      int64_t rest = q, oa = 0, ob = 0;
      for (int i = r - 2; i >= 0; --i) {
        const int64_t k = rest % s[i];
        rest /= s[i];
        oa += k * xa[i];
        ob += k * xb[i];
      }
      row<kOp>(a + oa, xa[r - 1], b + ob, xb[r - 1], out + q * inner, inner);
    }
  });
}

}  // namespace

void binary(BinaryOp op, const float* a, const int64_t* sa, const float* b, const int64_t* sb,
            float* out, const int64_t* shape, int rank, int threads) {
  for (int i = 0; i < rank; ++i)
    if (shape[i] == 0) return;
  switch (op) {
    case BinaryOp::Add: return run<BinaryOp::Add>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Sub: return run<BinaryOp::Sub>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Mul: return run<BinaryOp::Mul>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Div: return run<BinaryOp::Div>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Max: return run<BinaryOp::Max>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Min: return run<BinaryOp::Min>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Pow: return run<BinaryOp::Pow>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Fmod: return run<BinaryOp::Fmod>(a, sa, b, sb, out, shape, rank, threads);
    case BinaryOp::Remainder: return run<BinaryOp::Remainder>(a, sa, b, sb, out, shape, rank, threads);
  }
}

}  // namespace elementwise
}  // namespace pocketml
