// Convolutions over float32 NCHW feature maps (torch's layouts; a 1-D convolution is a 2-D one
// with H = 1), computed without materialising a padded or dilated copy of the weights:
// - depthwise (groups = C = C_out): a direct kernel per channel plane, the taps accumulated in
//   registers over a run of output pixels;
// - pointwise (1x1, stride 1, no padding): C_out x (H W) = W [C_out, C] . x [C, H W], one GEMM
//   per image and group straight over the feature map;
// - anything else (the stem's 3x3 stride 2, Whisper's 1-D convolutions, grouped ones): the
//   group's input unfolded (im2col, [C/g KH KW, OH OW]) and the same GEMM.
// Bias and a clip (ReLU, ReLU6) are applied as each output tile is stored, GELU or SiLU to each
// GEMM tile while it is in cache.
#pragma once

#include <cmath>
#include <cstdint>

#include "formats/weights.h"
#include "kernels/activation/activation.h"

namespace pocketml {
namespace conv {

// x [N, C, H, W], weight [Cout, C / groups, KH, KW], out [N, Cout, OH, OW]: C-contiguous float32.
// ph, pw: padding before (zeros); the padding after is whatever OH, OW imply.
struct Shape {
  int64_t N, C, H, W, Cout, KH, KW, OH, OW;
  int64_t sh, sw, dh, dw, ph, pw;
  int64_t groups;
  bool swapped = false;  // make_shape took a (k, 1) kernel over (H, 1) maps as 1-D along H
};

// out's dims after N: Cout, then OH, OW (2-D) or OW (1-D), as the caller's layout has them.
inline void output_dims(const Shape& s, int spatial, int64_t* dims) {
  dims[0] = s.N, dims[1] = s.Cout;
  if (spatial == 1) {
    dims[2] = s.OW;
  } else {
    dims[2] = s.swapped ? s.OW : s.OH;
    dims[3] = s.swapped ? s.OH : s.OW;
  }
}

// out = min(max(conv + bias, lo), hi) where `clip`; NaN stays NaN. Then, where `act`, the
// activation `kind` (activation::apply, `exact` as there: the same bits as the separate op).
struct Epilogue {
  bool clip = false;
  float lo = 0.0f, hi = 0.0f;
  bool act = false;
  activation::Kind kind = activation::Kind::GeluErf;
  bool exact = true;
};

// The clip to [lo, hi] where has_lo / has_hi (an open side unbounded), or none.
inline Epilogue clip_to(bool has_lo, float lo, bool has_hi, float hi) {
  Epilogue ep;
  ep.clip = has_lo || has_hi;
  ep.lo = has_lo ? lo : -INFINITY;
  ep.hi = has_hi ? hi : INFINITY;
  return ep;
}

// A convolution's weight [Cout, C / groups, KH, KW]: float32, or packed (formats/weights.h, as
// [Cout, C / groups * KH * KW]; every format of the linear layers), then decoded a block of output
// channels at a time as the GEMM reaches it, into a buffer that stays in cache: never a dense
// copy of the whole weight, whose writing and reading back cost more than the decoding.
struct Weight {
  const float* dense = nullptr;
  const WeightView* packed = nullptr;
  Weight() = default;
  Weight(const float* d) : dense(d) {}  // NOLINT: a float32 weight converts implicitly
  Weight(const WeightView* p) : packed(p) {}
};

// The shape of a convolution over `spatial` (1 or 2) dims from x's and w's shapes (rank spatial
// + 2), strides and dilations (spatial each) and pads ([begin, end] per dim); null, or what is
// wrong with them.
const char* make_shape(int spatial, const int64_t* x, const int64_t* w, const int64_t* strides,
                       const int64_t* pads, const int64_t* dilations, int64_t groups, Shape* s);

// The caller checks the shapes (bindings/conv.cpp, plan/program.cpp): OH, OW as torch computes
// them, every size >= 0, the weight and bias sized for the shape.
void conv2d(const Shape& s, const float* x, Weight w, const float* bias, const Epilogue& ep, float* out,
            int threads);

// Whether a 1x1 stride-1 unpadded convolution without groups (a matrix product per image).
inline bool is_pointwise(const Shape& s) {
  return s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 && s.groups == 1 &&
         s.OH == s.H && s.OW == s.W;
}

// A pointwise convolution on the linear layers' int8-activation path (linear::gemm with exact =
// false, where linear::int8_gemm(w)): every pixel of every image a row of channels (the maps
// transposed in, the outputs transposed back, clipped), each row quantized to int8 per block of
// 32 channels and multiplied with the packed weight in integer dot products (VNNI: 4x the
// multiply-adds of fp32 FMA per instruction). Approximate as compressed linear layers are.
void pointwise_int8(const Shape& s, const float* x, const WeightView& w, const float* bias, const Epilogue& ep,
                    float* out, int threads);


// Transposed convolution (torch's conv_transpose1d/2d): s describes it with x [N, C, H, W], w
// [C, Cout / groups, KH, KW], out [N, Cout, OH, OW] (OH, OW from the caller), ph / pw the begin
// pads; each input pixel's contributions are one GEMM column (the weight transposed per call),
// scattered into the output (col2im), bias first.
void conv_transpose2d(const Shape& s, const float* x, const float* w, const float* bias, float* out, int threads);

// C [M, N] (rows ldc apart) = A [M, K] (rows lda apart) . B [K, N], B's row k at B[k]: the
// convolutions' GEMM for a matmul of two activations (plan/program.cpp).
void matmul(const float* A, int64_t lda, const float* const* B, int64_t M, int64_t N, int64_t K, float* C,
            int64_t ldc, int threads);

// Whether pointwise_depthwise takes the pair: pw a 1x1 stride-1 unpadded convolution, dw a
// depthwise one over its output.
bool fuses_with_depthwise(const Shape& pw, const Shape& dw);

// dw(clip(pw(x))) without the pointwise output in memory: bands of the depthwise's output rows
// over the threads, each computing the pointwise rows it reads (halo rows twice) into a buffer
// that stays in cache (an inverted-residual block's expanded tensor, 2-5 MB on EfficientNet-Lite0,
// is otherwise written and read back from beyond the caches). out: dw's output.
void pointwise_depthwise(const Shape& pw, const float* x, Weight w1, const float* b1, const Epilogue& e1,
                         const Shape& dw, Weight w2, const float* b2, const Epilogue& e2, float* out, int threads);

// One instruction set's kernels (conv_impl.h, instantiated per file).
struct Kernels {
  int64_t strip;  // columns of C per gemm_tile call at most
  int64_t mr;     // rows of its register tile
  // C[m0:m1, n0:n1] = A[m0:m1, :K] . B[:K, n0:n1] (+ bias[m]), clipped; B's row k at B[k] (rows
  // of a map, of an unfolded input, or a padded input row shifted by a tap); n1 - n0 <= strip;
  // panel: scratch of panel_floats(K) floats, 64-byte aligned.
  void (*gemm_tile)(const float* A, int64_t lda, const float* const* B, int64_t K, int64_t m0, int64_t m1,
                    int64_t n0, int64_t n1, const float* bias, const Epilogue& ep, float* C, int64_t ldc,
                    float* panel);
  // One channel plane: out [OH, OW] from x [H, W] and w [KH, KW]; scratch: depthwise_floats(s).
  void (*depthwise)(const Shape& s, const float* x, const float* w, float bias, const Epilogue& ep,
                    float* out, float* scratch);
  int64_t (*panel_floats)(int64_t K);
  int64_t (*depthwise_floats)(const Shape& s);
  // Depthwise over blocks of `block` channels (0: none; then depthwise, plane by plane): cb <=
  // block channels, x/out their planes, w their kernels, bias theirs or null; scratch:
  // depthwise_block_floats(s) floats.
  int64_t block;
  void (*depthwise_block)(const Shape& s, const float* x, int64_t cb, const float* w, const float* bias,
                          const Epilogue& ep, float* out, float* scratch);
  int64_t (*depthwise_block_floats)(const Shape& s);
  // dst[c * ldd + r] = src[r * lds + c], clipped, for r < rows, c < cols: a tile of at most
  // tile x tile (pointwise_int8's maps to rows of channels and back)
  int64_t tile;
  void (*transpose_tile)(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd,
                         const Epilogue& ep);
  // gemm_tile for a strip of at most dot_cols columns (0: none) with K * dot_cols <=
  // panel_floats(K): dot products along K rather than a register tile of mostly empty columns
  int64_t dot_cols;
  void (*gemm_dots)(const float* A, int64_t lda, const float* const* B, int64_t K, int64_t m0, int64_t m1,
                    int64_t n0, int64_t n1, const float* bias, const Epilogue& ep, float* C, int64_t ldc,
                    float* panel);
};

const Kernels& generic_kernels();
#if defined(POCKETML_HAVE_AVX2_KERNELS)
const Kernels& avx2_kernels();
#endif
#if defined(POCKETML_HAVE_AVX512_KERNELS)
const Kernels& avx512_kernels();
#endif

}  // namespace conv
}  // namespace pocketml
