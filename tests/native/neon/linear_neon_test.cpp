// The aarch64 linear kernels (src/native/kernels/linear/arm_*.cpp) against the portable ones and
// a float64 reference, without Python: built by tests/native/test_neon_qemu.py with a cross
// compiler and run under qemu-aarch64 (or natively on an aarch64 machine), linked with
// core/cpu.cpp, core/pool.cpp and kernels/linear/{linear,generic,arm_neon,arm_dotprod}.cpp.
//
// Random packed weights of every format (f32, f16; int8/uint8/int4/uint4 with per-tensor,
// per-channel, per-block and grouped parameters, float32/float16 scales, no / integer / float
// zero points; 1-8 bit tables, float32/float16, along rows and columns, with and without a row
// scale) and awkward shapes run through linear::gemm on the portable kernels and on NEON:
//   exact:          both within 1e-5 of sum |x| |W| (+ |b|) of the float64 result, and of
//                   each other;
//   exact = false:  on base NEON and (where the CPU has it) SDOT, within the int8 rounding bound
//                   (tests/native/test_linear.py fast_bound) of the float64 result and of the
//                   portable exact one; SDOT and base NEON within float rounding of each other.
// Prints each failure and a summary; exits 1 on any failure.
//   linear_neon_test [--expect-level LEVEL]   (LEVEL: what simd_level() must say at start)
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "kernels/linear/arm.h"
#include "kernels/linear/linear.h"

using namespace pocketml;
using linear::kQBlock;

namespace {

std::mt19937_64 rng(12345);

double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
int64_t integer(int64_t lo, int64_t hi) {  // [lo, hi]
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
float normal() { return static_cast<float>(std::normal_distribution<double>(0, 1)(rng)); }

uint16_t to_half(float f) {
  const __fp16 h = static_cast<__fp16>(f);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
float from_half(uint16_t b) {
  __fp16 h;
  std::memcpy(&h, &b, 2);
  return static_cast<float>(h);
}

// A packed weight and the arrays it points into (never moved once built).
struct Packed {
  WeightView w;
  std::string name;
  std::vector<uint8_t> data, scale, zero, lut;
  std::vector<float> row_scale, lut_i8_scale;
  std::vector<int8_t> lut_i8;
  std::vector<double> lut_err;  // per row: how far its int8 table copy moved a weight (4-bit)
};

// codes [N * K] of nbits LSB-first
std::vector<uint8_t> pack_bits(const std::vector<uint32_t>& codes, int nbits) {
  std::vector<uint8_t> out((codes.size() * nbits + 7) / 8 + 1, 0);  // +1: slack, like numpy's
  for (size_t e = 0; e < codes.size(); ++e)
    for (int i = 0; i < nbits; ++i)
      if (codes[e] >> i & 1) {
        const size_t bit = e * nbits + i;
        out[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
      }
  return out;
}

// n scalars of type t from values v (as floats), as bytes
std::vector<uint8_t> scalars(const std::vector<float>& v, ScalarType t) {
  std::vector<uint8_t> out;
  for (float f : v) {
    uint8_t b[4];
    size_t sz = 0;
    if (t == ScalarType::F32) {
      std::memcpy(b, &f, 4);
      sz = 4;
    } else if (t == ScalarType::F16) {
      const uint16_t h = to_half(f);
      std::memcpy(b, &h, 2);
      sz = 2;
    } else if (t == ScalarType::I8) {
      b[0] = static_cast<uint8_t>(static_cast<int8_t>(f));
      sz = 1;
    } else {
      b[0] = static_cast<uint8_t>(f);
      sz = 1;
    }
    out.insert(out.end(), b, b + sz);
  }
  return out;
}

void set_groups(WeightView& w, int64_t g0, int64_t g1) {
  w.groups_n = g0;
  w.groups_k = g1;
  w.group_rows = w.N / g0;
  w.group_cols = w.K / g1;
}

std::string grid_name(int64_t g0, int64_t g1) {
  return "g[" + std::to_string(g0) + "," + std::to_string(g1) + "]";
}

std::unique_ptr<Packed> dense(int64_t N, int64_t K, bool half) {
  auto p = std::make_unique<Packed>();
  p->w.kind = half ? WeightKind::F16 : WeightKind::F32;
  p->w.N = N, p->w.K = K, p->w.nbits = half ? 16 : 32;
  std::vector<float> v(N * K);
  for (float& f : v) f = normal();
  p->data = scalars(v, half ? ScalarType::F16 : ScalarType::F32);
  p->w.data = p->data.data();
  p->name = half ? "f16" : "f32";
  return p;
}

// zero: 0 none, 1 integer (the codes' type), 2 float32, 3 float16
std::unique_ptr<Packed> quantized(int64_t N, int64_t K, int nbits, bool is_signed, int64_t g0,
                                  int64_t g1, ScalarType scale_type, int zero) {
  auto p = std::make_unique<Packed>();
  WeightView& w = p->w;
  w.kind = WeightKind::Quant;
  w.N = N, w.K = K, w.nbits = nbits, w.is_signed = is_signed;
  set_groups(w, g0, g1);
  const int64_t lo = is_signed ? -(1 << (nbits - 1)) : 0;
  const int64_t hi = is_signed ? (1 << (nbits - 1)) - 1 : (1 << nbits) - 1;
  std::vector<uint32_t> codes(N * K);
  for (auto& c : codes) c = static_cast<uint32_t>(integer(lo, hi)) & ((1u << nbits) - 1);
  p->data = pack_bits(codes, nbits);
  std::vector<float> s(g0 * g1), z(g0 * g1);
  for (float& f : s) f = static_cast<float>(uniform(0.01, 0.1));
  w.scale_type = scale_type;
  p->scale = scalars(s, scale_type);
  if (zero) {
    for (float& f : z)
      f = static_cast<float>(zero == 1 ? static_cast<double>(integer(lo, hi)) : uniform(lo, hi));
    w.zero_type = zero == 1 ? (is_signed ? ScalarType::I8 : ScalarType::U8)
                            : zero == 2 ? ScalarType::F32 : ScalarType::F16;
    p->zero = scalars(z, w.zero_type);
    w.zero = p->zero.data();
  }
  w.data = p->data.data();
  w.scale = p->scale.data();
  p->name = std::string(is_signed ? "int" : "uint") + std::to_string(nbits) + " " +
            grid_name(g0, g1) + (scale_type == ScalarType::F16 ? " s16" : " s32") +
            (zero == 0 ? "" : zero == 1 ? " zp" : zero == 2 ? " zp32" : " zp16");
  return p;
}

std::unique_ptr<Packed> palettized(int64_t N, int64_t K, int nbits, int64_t g0, int64_t g1,
                                   ScalarType lut_type, bool row_scale) {
  auto p = std::make_unique<Packed>();
  WeightView& w = p->w;
  w.kind = WeightKind::Lut;
  w.N = N, w.K = K, w.nbits = nbits;
  set_groups(w, g0, g1);
  std::vector<uint32_t> codes(N * K);
  for (auto& c : codes) c = static_cast<uint32_t>(integer(0, (1 << nbits) - 1));
  p->data = pack_bits(codes, nbits);
  std::vector<float> t(g0 * g1 << nbits);
  for (float& f : t) f = normal();
  w.lut_type = lut_type;
  p->lut = scalars(t, lut_type);
  w.data = p->data.data();
  w.lut = p->lut.data();
  if (row_scale) {
    p->row_scale.resize(N);
    for (float& f : p->row_scale) f = static_cast<float>(uniform(0.5, 2));
    w.row_scale = p->row_scale.data();
  }
  if (nbits == 4 && g1 == 1) {  // as the bindings do: the int8 copy for exact = false
    w.lut_i8_rows = w.group_rows;
    p->lut_i8.resize(g0 * 16);
    p->lut_i8_scale.resize(g0);
    linear::build_lut_i8(w, p->lut_i8.data(), p->lut_i8_scale.data());
    w.lut_i8 = p->lut_i8.data();
    w.lut_i8_scale = p->lut_i8_scale.data();
    p->lut_err.resize(N);
    const uint16_t* t16 = reinterpret_cast<const uint16_t*>(p->lut.data());
    for (int64_t n = 0; n < N; ++n) {  // half a step of the row's table copy, times its scale
      double m = 0;
      for (int64_t i = (n / w.group_rows) * 16, e = i + 16; i < e; ++i)
        m = std::max(m, std::fabs(double(lut_type == ScalarType::F16 ? from_half(t16[i]) : t[i])));
      p->lut_err[n] = m / 254 * (row_scale ? p->row_scale[n] : 1.0);
    }
  }
  p->name = "lut" + std::to_string(nbits) + " " + grid_name(g0, g1) +
            (lut_type == ScalarType::F16 ? " t16" : " t32") + (row_scale ? " rowscale" : "");
  return p;
}

struct Stats {
  int cases = 0, checks = 0, failures = 0, neon_rows = 0, neon_fast = 0, dotprod_fast = 0,
      weights = 0;
};

void fail(Stats& st, const std::string& what, double worst) {
  ++st.failures;
  if (st.failures <= 40) std::printf("FAIL %s: max error / bound %.3g\n", what.c_str(), worst);
}

// max over i of |a[i] - b[i]| / bound[i] (bound > 0)
double worst_ratio(const std::vector<float>& a, const std::vector<double>& b,
                   const std::vector<double>& bound) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(static_cast<double>(a[i]) - b[i]);
    w = std::max(w, std::isfinite(e) ? e / bound[i] : INFINITY);
  }
  return w;
}

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

std::vector<float> run(const WeightView& w, const std::vector<float>& x, int64_t M,
                       const float* bias, int threads, bool exact) {
  std::vector<float> out(M * w.N, NAN);
  linear::gemm(w, x.data(), M, bias, out.data(), threads, exact);
  return out;
}

void check(Stats& st, const Packed& p, bool dotprod) {
  const WeightView& w = p.w;
  const int64_t N = w.N, K = w.K;
  ++st.weights;
  set_simd_enabled(true);
  if (linear::neon_kernels(w)) ++st.neon_rows;
  if (linear::neon_fast_kernels(w)) ++st.neon_fast;
  if (dotprod && linear::neon_dotprod_fast_kernels(w)) ++st.dotprod_fast;

  std::vector<float> W(N * K);  // the definition (generic decode_row)
  for (int64_t n = 0; n < N; ++n) linear::decode_row(w, n, 0, K, W.data() + n * K);
  std::vector<double> rowmax(N, 0.0);
  for (int64_t i = 0; i < N * K; ++i)
    rowmax[i / K] = std::max(rowmax[i / K], std::fabs(static_cast<double>(W[i])));

  for (int64_t M : {1, 3, 17}) {
    ++st.cases;
    const std::string tag = p.name + " " + std::to_string(N) + "x" + std::to_string(K) +
                            " M=" + std::to_string(M);
    std::vector<float> x(M * K), b(N);
    for (int64_t i = 0; i < M * K; ++i) x[i] = normal() * (i % K % 7 == 0 ? 5.0f : 1.0f);
    for (float& f : b) f = normal();
    const float* bias = M % 2 ? b.data() : nullptr;

    std::vector<double> want(M * N), mag(M * N), bound(M * N), same(M * N), exact_tol(M * N);
    const int64_t body = K / kQBlock * kQBlock;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x.data() + m * K;
      std::vector<double> half(K / kQBlock);
      double xsum = 0, xsum_body = 0;
      for (int64_t k = 0; k < K; ++k) xsum += std::fabs(xm[k]);
      for (int64_t k = 0; k < body; ++k) {
        double& h = half[k / kQBlock];
        h = std::max(h, std::fabs(static_cast<double>(xm[k])) / 254);
      }
      for (int64_t k = 0; k < body; ++k) xsum_body += std::fabs(xm[k]) + half[k / kQBlock];
      for (int64_t n = 0; n < N; ++n) {
        double s = 0, a = 0, h = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double wv = W[n * K + k];
          s += wv * xm[k];
          a += std::fabs(wv * xm[k]);
          if (k < body) h += half[k / kQBlock] * std::fabs(wv);
        }
        if (bias) s += bias[n], a += std::fabs(bias[n]);
        if (!p.lut_err.empty()) h += xsum_body * p.lut_err[n];
        const int64_t i = m * N + n;
        want[i] = s;
        mag[i] = a;
        exact_tol[i] = 1e-5 * a + 1e-30;
        bound[i] = h + 1e-5 * a + 1e-30;
        same[i] = 1e-6 * (xsum * rowmax[n] + a) + 1e-30;
      }
    }

    // exact: the portable kernels, NEON, 1 and 2 threads
    std::vector<float> generic, neon;
    for (int simd = 0; simd < 2; ++simd) {
      set_simd_enabled(simd != 0);
      for (int threads : {1, 2}) {
        std::vector<float> out = run(w, x, M, bias, threads, true);
        ++st.checks;
        const double r = worst_ratio(out, want, exact_tol);
        if (!(r <= 1.0))
          fail(st, tag + (simd ? " neon" : " generic") + " exact threads=" +
                       std::to_string(threads), r);
        (simd ? neon : generic) = out;
      }
    }
    ++st.checks;
    const double r = worst_ratio(neon, as_double(generic), exact_tol);
    if (!(r <= 1.0)) fail(st, tag + " exact: neon vs generic", r);

    // exact = false: the portable level computes exactly (the same as exact = true)
    set_simd_enabled(false);
    ++st.checks;
    if (run(w, x, M, bias, 1, false) != generic)
      fail(st, tag + " generic exact=false != exact", INFINITY);

    // exact = false on base NEON and SDOT
    std::vector<std::vector<float>> fast;
    for (const char* level : {"neon", "neon-dotprod"}) {
      if (std::strcmp(level, "neon-dotprod") == 0 && !dotprod) continue;
      set_simd_level(level);
      for (int threads : {1, 2}) {
        std::vector<float> out = run(w, x, M, bias, threads, false);
        st.checks += 2;
        const std::string t = tag + " " + level + " exact=false threads=" + std::to_string(threads);
        double q = worst_ratio(out, want, bound);
        if (!(q <= 1.0)) fail(st, t + " vs float64", q);
        std::vector<double> b2(bound);
        for (size_t i = 0; i < b2.size(); ++i) b2[i] += exact_tol[i];
        q = worst_ratio(out, as_double(generic), b2);
        if (!(q <= 1.0)) fail(st, t + " vs generic exact", q);
        if (threads == 1) fast.push_back(out);
      }
    }
    if (fast.size() == 2) {
      ++st.checks;
      const double q = worst_ratio(fast[1], as_double(fast[0]), same);
      if (!(q <= 1.0)) fail(st, tag + " exact=false: neon-dotprod vs neon", q);
    }
    set_simd_enabled(true);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* expect = nullptr;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--expect-level") == 0) expect = argv[i + 1];
  const bool dotprod = cpu_features().neon_dotprod;
  const std::string level = simd_level();
  std::printf("simd_level: %s (neon %d, dotprod %d)\n", level.c_str(), cpu_features().neon,
              dotprod);
  Stats st;
  if (expect && level != expect)
    fail(st, "simd_level is " + level + ", expected " + expect, INFINITY);
  set_simd_enabled(false);
  if (std::strcmp(simd_level(), "generic") != 0)
    fail(st, "set_simd_enabled(false) leaves a SIMD level", INFINITY);
  set_simd_level("neon");
  if (std::strcmp(simd_level(), "neon") != 0)
    fail(st, "set_simd_level(neon) is not neon", INFINITY);
  set_simd_enabled(true);

  const ScalarType s32 = ScalarType::F32, s16 = ScalarType::F16;
  // (N, K): N no multiple of 4 or 8; K: one block, a block and a tail, odd blocks with tails,
  // SmolLM2's width; odd K (4-bit rows starting mid-byte: portable kernels) and a short row.
  const int64_t shapes[][2] = {{5, 32}, {13, 40}, {37, 100}, {19, 576}, {6, 64}, {3, 7}, {9, 33}};
  int variant = 0;
  for (const auto& shape : shapes) {
    const int64_t N = shape[0], K = shape[1];
    check(st, *dense(N, K, false), dotprod);
    check(st, *dense(N, K, true), dotprod);
    // parameter grids: tensor, channel, blocks of 32 and 16 (where K allows), grouped rows and
    // columns, blocks that fit no kernel (the portable fallback)
    std::vector<std::pair<int64_t, int64_t>> grids = {{1, 1}, {N, 1}};
    if (K % 32 == 0) grids.push_back({N, K / 32});
    if (K % 16 == 0 && K / 16 > 1) grids.push_back({N, K / 16});
    if (K % 64 == 0) grids.push_back({1, K / 64});
    if (K % 10 == 0) grids.push_back({N, K / 10});
    for (int nbits : {8, 4})
      for (bool is_signed : {true, false})
        for (size_t g = 0; g < grids.size(); ++g)
          for (int zero = 0; zero < 4; ++zero) {
            ++variant;
            check(st, *quantized(N, K, nbits, is_signed, grids[g].first, grids[g].second,
                                 variant % 2 ? s16 : s32, zero), dotprod);
          }
    for (int nbits = 1; nbits <= 8; ++nbits) {
      std::vector<std::pair<int64_t, int64_t>> lgrids = {{1, 1}, {N, 1}};
      if (K % 16 == 0 && K / 16 > 1) lgrids.push_back({1, K / 16});  // tables along K
      if (K % 5 == 0) lgrids.push_back({1, 5});                      // groups fitting no kernel
      for (size_t g = 0; g < lgrids.size(); ++g)
        for (ScalarType t : {s32, s16}) {
          ++variant;
          const bool rs = variant % 3 == 0;
          check(st, *palettized(N, K, nbits, lgrids[g].first, lgrids[g].second, t, rs), dotprod);
        }
    }
  }
  std::printf("%d weights, %d cases (weight x M), %d checks, %d failures; NEON row kernels for %d "
              "weights, int8 path for %d (SDOT: %d)\n",
              st.weights, st.cases, st.checks, st.failures, st.neon_rows, st.neon_fast,
              st.dotprod_fast);
  return st.failures ? 1 : 0;
}
