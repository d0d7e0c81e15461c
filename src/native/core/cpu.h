// What the CPU can do, detected once at start, and the process-wide switch between the SIMD
// kernels and the portable ones (POCKETML_NATIVE_SIMD=0 in the environment, or set_simd(false)).
#pragma once

namespace pocketml {

struct CpuFeatures {
  bool avx2 = false;  // x86-64: AVX2 with the OS saving YMM state (cpuid + xgetbv)
  bool fma = false;
  bool f16c = false;
  bool neon = false;  // aarch64: Advanced SIMD is part of the base architecture
};

// Detected on first use (thread-safe), never changes.
const CpuFeatures& cpu_features();

// Whether SIMD kernels may run: starts as POCKETML_NATIVE_SIMD != "0", set by set_simd().
bool simd_enabled();
void set_simd_enabled(bool enabled);

// The AVX2 + FMA + F16C kernels are compiled in and may run now.
bool use_avx2();

// "avx2", "neon" or "generic": the instruction set the linear kernels use now.
const char* simd_level();

}  // namespace pocketml
