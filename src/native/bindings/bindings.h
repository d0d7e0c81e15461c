// The Python module pocketml._native (nanobind): module.cpp calls one init_<area>() per area;
// these files are the only ones that know Python. The GIL is released around every kernel.
#pragma once

#include <nanobind/nanobind.h>

#include "formats/weights.h"

namespace nb = nanobind;

namespace pocketml::bindings {

void init_core(nb::module_& m);    // core.cpp: CPU features, SIMD switch, threads
void init_kmeans(nb::module_& m);  // kmeans.cpp: 1-D k-means for palettization
void init_linear(nb::module_& m);  // linear.cpp: PackedLinear
void init_attention(nb::module_& m);  // attention.cpp: sdpa
void init_norm(nb::module_& m);       // norm.cpp: rms_norm, layer_norm
void init_activation(nb::module_& m);  // activation.cpp: gelu (erf), silu [* gate]
void init_rotary(nb::module_& m);      // rotary.cpp: rotary embedding
void init_conv(nb::module_& m);        // conv.cpp: conv (1-D and 2-D)
void init_plan(nb::module_& m);        // plan.cpp: Program, a plan's step loop run natively

// linear.cpp: the weight of a PackedLinear object (null if h is not one); valid while h lives.
const WeightView* packed_weight(nb::handle h);

}  // namespace pocketml::bindings
