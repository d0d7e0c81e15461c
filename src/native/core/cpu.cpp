#include "core/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define POCKETML_X86_GNU 1
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#define POCKETML_X86_MSVC 1
#endif

namespace pocketml {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(POCKETML_X86_GNU) || defined(POCKETML_X86_MSVC)
  unsigned a = 0, b = 0, c = 0, d = 0;
#if defined(POCKETML_X86_GNU)
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
#else
  int r[4];
  __cpuid(r, 1);
  a = r[0], b = r[1], c = r[2], d = r[3];
#endif
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (!osxsave || !avx) return CpuFeatures{};
  // The OS must save the XMM and YMM registers on context switches (XCR0 bits 1 and 2).
#if defined(POCKETML_X86_GNU)
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const unsigned long long xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
#else
  const unsigned long long xcr0 = _xgetbv(0);
#endif
  if ((xcr0 & 6) != 6) return CpuFeatures{};
#if defined(POCKETML_X86_GNU)
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) f.avx2 = b & (1u << 5);
#else
  __cpuidex(r, 7, 0);
  f.avx2 = r[1] & (1 << 5);
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
  f.neon = true;
#endif
  return f;
}

bool env_simd() {
  const char* env = std::getenv("POCKETML_NATIVE_SIMD");
  return !(env && std::strcmp(env, "0") == 0);
}

std::atomic<bool> g_simd{env_simd()};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool simd_enabled() { return g_simd.load(std::memory_order_relaxed); }
void set_simd_enabled(bool enabled) { g_simd.store(enabled, std::memory_order_relaxed); }

bool use_avx2() {
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c && simd_enabled();
#else
  return false;
#endif
}

const char* simd_level() {
  if (use_avx2()) return "avx2";
  // TODO(arm): NEON linear kernels (kernels/linear/arm_neon.cpp); until then aarch64 runs the
  // portable ones and says so.
  return "generic";
}

}  // namespace pocketml
