#include "bindings/bindings.h"

NB_MODULE(_native, m) {
  m.doc() = "pocketml's native kernels (C++ sources in src/native/).";
  pocketml::bindings::init_core(m);
  pocketml::bindings::init_kmeans(m);
  pocketml::bindings::init_linear(m);
  pocketml::bindings::init_attention(m);
  pocketml::bindings::init_norm(m);
  pocketml::bindings::init_activation(m);
  pocketml::bindings::init_rotary(m);
  pocketml::bindings::init_conv(m);
  pocketml::bindings::init_plan(m);
}
