// Bindings of core/: what the CPU offers, the SIMD switch, the thread count.
#include <nanobind/stl/string.h>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "core/cpu.h"
#include "core/pool.h"

namespace pocketml::bindings {

using namespace nb::literals;

void init_core(nb::module_& m) {
  m.def("simd_level", [] { return std::string(simd_level()); },
        "The best instruction set the linear kernels use now: \"avx512vnni\" (the int8-activation "
        "path, exact=False; the rest runs AVX2), \"avx2\", \"neon-dotprod\" (aarch64: the "
        "int8-activation path with SDOT; the rest runs NEON), \"neon\" or \"generic\".");
  m.def("set_simd", [](bool enabled) { set_simd_enabled(enabled); }, "enabled"_a,
        "Allow (True: the best the CPU has) or forbid (False) SIMD kernels process-wide; False "
        "forces the portable ones (for tests). POCKETML_NATIVE_SIMD=0 in the environment starts "
        "with False.");
  m.def("set_simd_level", [](const std::string& level) {
    if (!set_simd_level(level.c_str()))
      value_error("level must be 'generic', 'avx2', 'neon', 'avx512vnni' or 'neon-dotprod', got '" +
                  level + "'");
  }, "level"_a,
        "Cap the instruction sets kernels may use process-wide, in the order generic < avx2 (= "
        "neon) < avx512vnni (= neon-dotprod); they use the best the CPU has up to it (for tests: "
        "the AVX2 kernels on an AVX-512 CPU, base NEON on one with the dot-product extension). "
        "set_simd(True) lifts the cap. POCKETML_NATIVE_SIMD=<level> in the environment starts "
        "with it.");
  m.def("cpu_features", [] {
    const CpuFeatures& f = cpu_features();
    nb::dict d;
    d["avx2"] = f.avx2;
    d["fma"] = f.fma;
    d["f16c"] = f.f16c;
    d["avx512vnni"] = f.avx512vnni;
    d["avx512vbmi"] = f.avx512vbmi;
    d["neon"] = f.neon;
    d["neon_dotprod"] = f.neon_dotprod;
    return d;
  }, "What the CPU offers (detected once): {'avx2', 'fma', 'f16c', 'avx512vnni', 'avx512vbmi', "
     "'neon', 'neon_dotprod'} -> bool; avx512vnni: AVX-512 F, BW, VL and VNNI, with the OS saving "
     "their registers; avx512vbmi: those and VBMI + VBMI2; neon_dotprod: aarch64's dot-product "
     "extension (SDOT).");
  m.def("default_threads", &default_threads,
        "Threads a kernel uses when given threads=0: POCKETML_THREADS, else the usable CPUs.");
}

}  // namespace pocketml::bindings
