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
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)  // the kernel's bit for the dot-product extension
#endif
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
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
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
#else
  __cpuidex(r, 7, 0);
  b = r[1], c = r[2];
#endif
  f.avx2 = b & (1u << 5);
  // AVX-512: F (EBX 16), BW (EBX 30), VL (EBX 31), VNNI (ECX 11), and the OS saving the opmask
  // registers and both halves of ZMM (XCR0 bits 5, 6, 7).
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 31));
  f.avx512vnni = avx512 && (c & (1u << 11)) && (xcr0 & 0xe0) == 0xe0;
  // VBMI (ECX 1), VBMI2 (ECX 6)
  f.avx512vbmi = f.avx512vnni && (c & (1u << 1)) && (c & (1u << 6));
#elif defined(__aarch64__) || defined(_M_ARM64)
  f.neon = true;
#if defined(__aarch64__) && defined(__linux__)
  f.neon_dotprod = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__aarch64__) && defined(__APPLE__)
  int v = 0;
  size_t len = sizeof(v);
  f.neon_dotprod = sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, nullptr, 0) == 0 && v;
#endif
#endif
  return f;
}

// The cap on instruction sets (cpu.h), in order; on aarch64 kAvx2 caps at base NEON and
// kAvx512Vnni allows its dot-product extension too.
enum Level : int { kGeneric = 0, kAvx2 = 1, kAvx512Vnni = 2, kNoCap = kAvx512Vnni };

int parse_level(const char* name) {
  if (std::strcmp(name, "generic") == 0) return kGeneric;
  if (std::strcmp(name, "avx2") == 0 || std::strcmp(name, "neon") == 0) return kAvx2;
  if (std::strcmp(name, "avx512vnni") == 0 || std::strcmp(name, "neon-dotprod") == 0)
    return kAvx512Vnni;
  return -1;
}

int env_level() {
  const char* env = std::getenv("POCKETML_NATIVE_SIMD");
  if (!env) return kNoCap;
  if (std::strcmp(env, "0") == 0) return kGeneric;
  const int level = parse_level(env);
  return level < 0 ? kNoCap : level;
}

std::atomic<int> g_level{env_level()};

int level() { return g_level.load(std::memory_order_relaxed); }

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool simd_enabled() { return level() > kGeneric; }
void set_simd_enabled(bool enabled) {
  g_level.store(enabled ? kNoCap : kGeneric, std::memory_order_relaxed);
}
bool set_simd_level(const char* name) {
  const int l = parse_level(name);
  if (l < 0) return false;
  g_level.store(l, std::memory_order_relaxed);
  return true;
}

bool use_avx2() {
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c && level() >= kAvx2;
#else
  return false;
#endif
}

bool use_avx512vnni() {
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  // its kernels share AVX2's activation quantization
  return cpu_features().avx512vnni && use_avx2() && level() >= kAvx512Vnni;
#else
  return false;
#endif
}

bool use_avx512vbmi() {
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  return cpu_features().avx512vbmi && use_avx512vnni();
#else
  return false;
#endif
}

bool use_neon() {
#if defined(POCKETML_HAVE_NEON_KERNELS)
  return cpu_features().neon && level() >= kAvx2;
#else
  return false;
#endif
}

bool use_neon_dotprod() {
#if defined(POCKETML_HAVE_NEON_KERNELS)
  return cpu_features().neon_dotprod && use_neon() && level() >= kAvx512Vnni;
#else
  return false;
#endif
}

const char* simd_level() {
  if (use_avx512vnni()) return "avx512vnni";
  if (use_avx2()) return "avx2";
  if (use_neon_dotprod()) return "neon-dotprod";
  if (use_neon()) return "neon";
  return "generic";
}

}  // namespace pocketml
