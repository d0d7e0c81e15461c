// The float32 forms' constants (x86_avx2.cpp's comments say how they were fitted), shared by the
// AVX2 and AVX-512 files here and the attention softmax's: data only, no inline function (see
// x86_avx2.cpp's header).
#pragma once

namespace pocketml {
namespace activation {

// GELU's H(a) = P(a) / Q(a), lowest degree first
constexpr float kHPf[] = {0.5000000025617533f, 0.4361123106282302f, 0.18162010793230554f,
                          0.04008922387101515f, 0.004035643327477264f};
constexpr float kHQf[] = {1.0f, 1.6701095495544096f, 1.195790607359688f, 0.4652071888569391f,
                          0.10049600084761784f, 0.01011571861820237f};
// exp(r) on |r| <= ln2 / 2, highest degree first (relative error 2e-9)
constexpr float kExpf[] = {0.00138435572868f, 0.008374236589f, 0.0416680075053f, 0.166664303276f,
                           0.499999941736f,   1.00000003236f,  1.0f};

}  // namespace activation
}  // namespace pocketml
