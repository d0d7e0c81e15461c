// What the CPU can do, detected once at start, and the process-wide cap on the instruction sets
// kernels may use (POCKETML_NATIVE_SIMD in the environment, set_simd_enabled / set_simd_level).
#pragma once

namespace pocketml {

struct CpuFeatures {
  bool avx2 = false;  // x86-64: AVX2 with the OS saving YMM state (cpuid + xgetbv)
  bool fma = false;
  bool f16c = false;
  // AVX-512 F + BW + VL + VNNI with the OS saving ZMM and opmask state
  bool avx512vnni = false;
  bool neon = false;  // aarch64: Advanced SIMD is part of the base architecture
};

// Detected on first use (thread-safe), never changes.
const CpuFeatures& cpu_features();

// The cap, in order: "generic" (portable kernels only) < "avx2" (and "neon") < "avx512vnni";
// kernels use the best the CPU has up to it. It starts from POCKETML_NATIVE_SIMD ("0" or
// "generic", "avx2", "avx512vnni"; unset or anything else: no cap).

// Whether SIMD kernels may run (the cap is above generic).
bool simd_enabled();
// true: no cap; false: portable kernels only.
void set_simd_enabled(bool enabled);
// The cap by name (as above, "neon" as "avx2"); false (and nothing changed) for an unknown name.
bool set_simd_level(const char* name);

// The AVX2 + FMA + F16C kernels are compiled in and may run now.
bool use_avx2();
// The AVX-512 VNNI kernels (int8-activation linear path) are compiled in and may run now.
bool use_avx512vnni();

// "avx512vnni", "avx2", "neon" or "generic": the best instruction set the linear kernels use now
// (avx512vnni: for the int8-activation path; the rest of them run AVX2).
const char* simd_level();

}  // namespace pocketml
