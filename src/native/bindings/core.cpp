// Bindings of core/: what the CPU offers, the SIMD switch, the thread count.
#include <nanobind/stl/string.h>

#include "bindings/bindings.h"
#include "core/cpu.h"
#include "core/pool.h"

namespace pocketml::bindings {

using namespace nb::literals;

void init_core(nb::module_& m) {
  m.def("simd_level", [] { return std::string(simd_level()); },
        "The instruction set the linear kernels use now: \"avx2\", \"neon\" or \"generic\".");
  m.def("set_simd", [](bool enabled) { set_simd_enabled(enabled); }, "enabled"_a,
        "Allow (True) or forbid (False) SIMD kernels process-wide; False forces the portable "
        "ones (for tests). POCKETML_NATIVE_SIMD=0 in the environment starts with False.");
  m.def("cpu_features", [] {
    const CpuFeatures& f = cpu_features();
    nb::dict d;
    d["avx2"] = f.avx2;
    d["fma"] = f.fma;
    d["f16c"] = f.f16c;
    d["neon"] = f.neon;
    return d;
  }, "What the CPU offers (detected once): {'avx2', 'fma', 'f16c', 'neon'} -> bool.");
  m.def("default_threads", &default_threads,
        "Threads a kernel uses when given threads=0: POCKETML_THREADS, else the usable CPUs.");
}

}  // namespace pocketml::bindings
