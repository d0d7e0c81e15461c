// Portable kernels of every packed format: scalar decoding of a piece of a row into a small
// buffer, then a dot product the compiler vectorises with the baseline instruction set.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "formats/half.h"
#include "kernels/linear/linear.h"

namespace pocketml {
namespace linear {
namespace {

float scalar_at(const void* p, ScalarType t, int64_t i) {
  switch (t) {
    case ScalarType::F32: return static_cast<const float*>(p)[i];
    case ScalarType::F16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case ScalarType::F64: return static_cast<float>(static_cast<const double*>(p)[i]);
    case ScalarType::I8: return static_cast<const int8_t*>(p)[i];
    case ScalarType::U8: return static_cast<const uint8_t*>(p)[i];
    default: return 0.0f;
  }
}

// Code of element e in an LSB-first stream of nbits-bit codes (nbits <= 8).
inline uint32_t code_at(const uint8_t* p, int64_t e, int nbits) {
  const int64_t bit = e * nbits;
  const int64_t byte = bit >> 3;
  const int shift = static_cast<int>(bit & 7);
  uint32_t v = p[byte] >> shift;
  if (shift + nbits > 8) v |= static_cast<uint32_t>(p[byte + 1]) << (8 - shift);
  return v & ((1u << nbits) - 1);
}

float dot(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[k + j] * b[k + j];
  float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; k < n; ++k) r += a[k] * b[k];
  return r;
}

constexpr int64_t kPiece = 256;  // columns decoded at a time by the generic gemv

void gemv(const WeightView& w, const float* x, int64_t n0, int64_t n1, const float* bias,
          float* out) {
  float buf[kPiece];
  for (int64_t n = n0; n < n1; ++n) {
    float acc = 0.0f;
    for (int64_t k = 0; k < w.K; k += kPiece) {
      const int64_t len = std::min(kPiece, w.K - k);
      decode_row(w, n, k, k + len, buf);
      acc += dot(buf, x + k, len);
    }
    out[n] = bias ? acc + bias[n] : acc;
  }
}

void decode(const WeightView& w, int64_t n0, int64_t n1, float* tile, int64_t ldt) {
  for (int64_t n = n0; n < n1; ++n) {
    float* t = tile + (n - n0) * ldt;
    decode_row(w, n, 0, w.K, t);
    std::fill(t + w.K, t + ldt, 0.0f);
  }
}

}  // namespace

int popcount64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(v);
#else
  v = v - ((v >> 1) & 0x5555555555555555ull);
  v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
  v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<int>((v * 0x0101010101010101ull) >> 56);
#endif
}

int64_t count_bits(const uint8_t* p, int64_t b0, int64_t b1) {
  int64_t c = 0;
  for (; b0 < b1 && (b0 & 7); ++b0) c += (p[b0 >> 3] >> (b0 & 7)) & 1;
  for (; b0 + 64 <= b1; b0 += 64) {
    uint64_t v;
    std::memcpy(&v, p + (b0 >> 3), 8);
    c += popcount64(v);
  }
  for (; b0 < b1; ++b0) c += (p[b0 >> 3] >> (b0 & 7)) & 1;
  return c;
}

namespace {

// codes[j] = code of element e0 + j, j < count (an LSB-first stream of nbits-bit codes)
template <int kBits>
void unpack(const uint8_t* p, int64_t e0, int64_t count, uint8_t* codes) {
  if (kBits == 8) {
    std::memcpy(codes, p + e0, static_cast<size_t>(count));
    return;
  }
  int64_t j = 0;
  // the first codes one by one up to a byte boundary of the stream, then 8 codes per kBits bytes
  for (; j < count && ((e0 + j) * kBits) % 8; ++j) codes[j] = static_cast<uint8_t>(code_at(p, e0 + j, kBits));
  const uint8_t* q = p + (e0 + j) * kBits / 8;
  for (; j + 8 <= count; j += 8, q += kBits) {
    uint64_t v = 0;
    std::memcpy(&v, q, kBits);  // little-endian: the stream's bits in order
    for (int i = 0; i < 8; ++i) codes[j + i] = static_cast<uint8_t>((v >> (i * kBits)) & ((1u << kBits) - 1));
  }
  for (; j < count; ++j) codes[j] = static_cast<uint8_t>(code_at(p, e0 + j, kBits));
}

void unpack_codes(const uint8_t* p, int nbits, int64_t e0, int64_t count, uint8_t* codes) {
  switch (nbits) {
    case 1: unpack<1>(p, e0, count, codes); break;
    case 2: unpack<2>(p, e0, count, codes); break;
    case 3: unpack<3>(p, e0, count, codes); break;
    case 4: unpack<4>(p, e0, count, codes); break;
    case 5: unpack<5>(p, e0, count, codes); break;
    case 6: unpack<6>(p, e0, count, codes); break;
    case 7: unpack<7>(p, e0, count, codes); break;
    default: unpack<8>(p, e0, count, codes); break;
  }
}

constexpr int64_t kRun = 256;  // elements decoded at a time

void decode_sparse(const WeightView& w, int64_t n, int64_t k0, int64_t k1, float* out) {
  const int64_t e0 = n * w.K;
  int64_t v = w.row_offset[n] + count_bits(w.data, e0, e0 + k0);  // the next value
  float vals[kRun];
  for (int64_t k = k0; k < k1; k += kRun) {
    const int64_t len = std::min(kRun, k1 - k);
    const int64_t nv = count_bits(w.data, e0 + k, e0 + k + len);
    if (nv) decode_row(*w.values, 0, v, v + nv, vals);
    int64_t i = 0;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t b = e0 + k + j;
      out[k - k0 + j] = (w.data[b >> 3] >> (b & 7)) & 1 ? vals[i++] : 0.0f;
    }
    v += nv;
  }
}

}  // namespace

void decode_row(const WeightView& w, int64_t n, int64_t k0, int64_t k1, float* out) {
  const int64_t K = w.K;
  if (w.kind == WeightKind::F32) {
    std::memcpy(out, reinterpret_cast<const float*>(w.data) + n * K + k0,
                sizeof(float) * (k1 - k0));
    return;
  }
  if (w.kind == WeightKind::F16) {
    const uint16_t* p = reinterpret_cast<const uint16_t*>(w.data) + n * K;
    for (int64_t k = k0; k < k1; ++k) out[k - k0] = half_to_float(p[k]);
    return;
  }
  if (w.kind == WeightKind::Sparse) {
    decode_sparse(w, n, k0, k1, out);
    return;
  }
  const int nbits = w.nbits;
  const int64_t gbase = (n / w.group_rows) * w.groups_k;
  const int64_t e0 = n * K;
  uint8_t codes[kRun];
  float table[256];
  int64_t table_group = -1;  // the group whose (non-float32) table `table` holds
  for (int64_t k = k0; k < k1;) {
    const int64_t gk = k / w.group_cols;
    const int64_t end = std::min({k1, (gk + 1) * w.group_cols, k + kRun});
    const int64_t g = gbase + gk;
    float* o = out + (k - k0);
    const int64_t len = end - k;
    unpack_codes(w.data, nbits, e0 + k, len, codes);
    if (w.kind == WeightKind::Quant) {
      const float s = scalar_at(w.scale, w.scale_type, g);
      const bool has_zero = w.zero != nullptr;
      const float z = has_zero ? scalar_at(w.zero, w.zero_type, g) : 0.0f;
      const int32_t half = 1 << (nbits - 1);
      for (int64_t j = 0; j < len; ++j) {
        const int32_t c = codes[j];
        const int32_t q = w.is_signed ? (c ^ half) - half : c;  // two's complement of nbits
        // the definition: q.astype(float32) - zero_point.astype(float32), then * scale
        const float v = has_zero ? static_cast<float>(q) - z : static_cast<float>(q);
        o[j] = v * s;
      }
    } else {  // Lut
      const int64_t entries = int64_t(1) << nbits;
      const float* t = table;
      if (w.lut_type == ScalarType::F32) {
        t = static_cast<const float*>(w.lut) + g * entries;
      } else if (g != table_group && len < entries) {  // a short run (a row's tail): its entries only
        const float r = w.row_scale ? w.row_scale[n] : 1.0f;
        for (int64_t j = 0; j < len; ++j) {
          const float v = scalar_at(w.lut, w.lut_type, g * entries + codes[j]);
          o[j] = w.row_scale ? v * r : v;
        }
        k = end;
        continue;
      } else if (g != table_group) {
        for (int64_t i = 0; i < entries; ++i) table[i] = scalar_at(w.lut, w.lut_type, g * entries + i);
        table_group = g;
      }
      if (w.row_scale) {
        const float r = w.row_scale[n];
        for (int64_t j = 0; j < len; ++j) o[j] = t[codes[j]] * r;
      } else {
        for (int64_t j = 0; j < len; ++j) o[j] = t[codes[j]];
      }
    }
    k = end;
  }
}

const RowKernels generic_kernels = {false, gemv, decode};

void build_lut_i8(const WeightView& w, int8_t* t8, float* scale) {
  const int64_t entries = int64_t(1) << w.nbits, R = w.lut_i8_rows, copies = (w.N + R - 1) / R;
  const uint32_t mask = (uint32_t(1) << w.nbits) - 1;
  const int64_t bytes = (w.N * w.K * w.nbits + 7) / 8;
  std::vector<uint8_t> used(static_cast<size_t>(entries), 1);
  for (int64_t t = 0; t < copies; ++t) {
    const int64_t n0 = t * R, n1 = std::min(w.N, n0 + R), g = n0 / w.group_rows;
    if (R < w.group_rows) {  // fewer rows than share the table: the entries they use
      std::fill(used.begin(), used.end(), uint8_t(0));
      for (int64_t e = n0 * w.K, e1 = n1 * w.K; e < e1; ++e) {
        const int64_t bit = e * w.nbits;
        uint32_t v = w.data[bit >> 3];
        if ((bit >> 3) + 1 < bytes) v |= static_cast<uint32_t>(w.data[(bit >> 3) + 1]) << 8;
        used[(v >> (bit & 7)) & mask] = 1;
      }
    }
    float amax = 0.0f;
    for (int64_t i = 0; i < entries; ++i)
      if (used[static_cast<size_t>(i)]) amax = std::max(amax, std::abs(scalar_at(w.lut, w.lut_type, g * entries + i)));
    const float s = amax / 127.0f;
    scale[t] = s;
    for (int64_t i = 0; i < entries; ++i) {  // entries these rows never use: clamped
      const float v = scalar_at(w.lut, w.lut_type, g * entries + i);
      const float r = s > 0.0f ? std::nearbyint(v / s) : 0.0f;
      t8[t * entries + i] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, r)));
    }
  }
}

void tile_gemm_generic(const float* x, int64_t ldx, int64_t M, const float* tile, int64_t ldt,
                       int64_t rows, int64_t kp, float* out, int64_t ldo, float*) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t r = 0; r < rows; ++r) out[m * ldo + r] += dot(x + m * ldx, tile + r * ldt, kp);
}

}  // namespace linear
}  // namespace pocketml
