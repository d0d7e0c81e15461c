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
  // and VBMI + VBMI2 (byte permutes, multishift, byte expand: Ice Lake and Zen 4 on)
  bool avx512vbmi = false;
  bool neon = false;  // aarch64: Advanced SIMD is part of the base architecture
  bool neon_dotprod = false;  // aarch64: the dot-product extension (SDOT/UDOT; Armv8.2 and up)
};

// Detected on first use (thread-safe), never changes.
const CpuFeatures& cpu_features();

// The cap, in order: "generic" (portable kernels only) < "avx2" (= "neon") < "avx512vnni" (=
// "neon-dotprod"); kernels use the best the CPU has up to it. It starts from POCKETML_NATIVE_SIMD
// ("0" or one of those names; unset or anything else: no cap).

// Whether SIMD kernels may run (the cap is above generic).
bool simd_enabled();
// true: no cap; false: portable kernels only.
void set_simd_enabled(bool enabled);
// The cap by name (as above); false (and nothing changed) for an unknown name.
bool set_simd_level(const char* name);

// The AVX2 + FMA + F16C kernels are compiled in and may run now.
bool use_avx2();
// The AVX-512 VNNI kernels (int8-activation linear path) are compiled in and may run now.
bool use_avx512vnni();
// The AVX-512 VBMI kernels (tables of any width, sparse rows) are compiled in and may run now:
// part of the avx512vnni level, where the CPU also has VBMI and VBMI2.
bool use_avx512vbmi();

// The NEON kernels are compiled in and may run now (aarch64).
bool use_neon();
// The NEON dot-product kernels (int8-activation linear path, SDOT) are compiled in and may run
// now.
bool use_neon_dotprod();

// "avx512vnni", "avx2", "neon-dotprod", "neon" or "generic": the best instruction set the linear
// kernels use now (avx512vnni / neon-dotprod: for the int8-activation path; the rest of them run
// AVX2 / NEON).
const char* simd_level();

}  // namespace pocketml
