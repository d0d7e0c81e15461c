// Elementwise kernels of a plan's small steps (the references: ir/ops/elementwise.py, shape.py,
// creation.py). binary.cpp: float32 arithmetic with NumPy broadcasting, one IEEE operation per
// element, so results equal NumPy's bit for bit (residual adds and the like; memory-bound,
// portable code the compiler vectorises). cast.cpp: dtype conversion and arange, bit for bit.
// unary.cpp: float32 math (a rotary embedding's cos/sin tables), within float32 rounding.
// reduce.cpp: float32 sums (and 2-norms) accumulated in double and rounded once, like the
// reference. unary.cpp also holds clip. logic.cpp: comparisons, logic, int64 arithmetic and
// where over broadcast operands (an attention mask built from the input's), bit for bit.
#pragma once

#include <cstdint>

namespace pocketml {
namespace elementwise {

// Add..Div: IEEE float32 (bit for bit NumPy's); Max, Min: np.maximum / np.minimum (NaN from either,
// the second operand on ties: +0 / -0); Pow: in double, rounded once; Fmod: C's fmodf; Remainder:
// fmod then y added where the signs differ (the reference's float32 arithmetic)
enum class BinaryOp { Add, Sub, Mul, Div, Max, Min, Pow, Fmod, Remainder };

// out[i] = a[i] op b[i] over `shape` (rank axes), out C-contiguous; a and b read through element
// strides sa, sb (0 on broadcast axes). threads 0: default.
void binary(BinaryOp op, const float* a, const int64_t* sa, const float* b, const int64_t* sb,
            float* out, const int64_t* shape, int rank, int threads);

// The IR's dtypes (ir/types.py); Bool is one byte, 0 or 1.
enum class Type { F32, F16, I64, I32, I16, I8, U8, Bool };

// out[i] = x[i] as NumPy's astype(to) gives it (to bool: x != 0), over n contiguous elements.
// False, out partly written, where NumPy's result depends on the platform: a float that is NaN,
// infinite or out of an integer type's range, or a NaN cast to another float type.
bool cast(Type from, const void* x, Type to, void* out, int64_t n);

// out[i] = start + i * step as int64 (the caller keeps it from overflowing), converted as cast()
// converts int64: ir/ops/creation.py arange with integer bounds.
void arange(int64_t start, int64_t step, int64_t n, Type to, void* out);

enum class UnaryOp {
  Neg, Exp, Sin, Cos, Tanh, Log, Sigmoid, Relu,
  Abs, Sign, Floor, Ceil, Round, Trunc, Sqrt, Rsqrt, Reciprocal, Exp2, Expm1, Log2, Log10, Log1p,
  Tan, Atan, Erf,
  HardSigmoid, HardSwish, Mish, LogSigmoid, GeluTanh,
  LeakyRelu,  // params: alpha
  Elu,        // params: alpha, scale, input_scale (selu, celu)
  Softplus,   // params: beta, threshold
};
constexpr int kUnaryParams = 3;

// out[i] = op(x[i]) over n contiguous float32 elements, computed in double and rounded once like
// the references (ir/ops/elementwise.py, activation.py; Neg, Abs, Sign and the roundings exactly,
// NaN included). params: the op's attributes in the order above, or null where it has none.
void unary(UnaryOp op, const float* x, float* out, int64_t n, const double* params = nullptr);

// out[o * inner + i] = sum over r < R of x[(o * R + r) * inner + i], accumulated in double in
// order of r and rounded once (ir/ops/reduce.py reduce_sum over a run of consecutive axes of a
// C-contiguous x: NumPy's float64 sums, to the float32 rounding); l2: the square root of the sum
// of squares instead (reduce_norm, ord 2); mean: the sum divided by R in double (reduce_mean).
// threads 0: default.
void reduce_sum(const float* x, int64_t outer, int64_t R, int64_t inner, float* out, int threads,
                bool l2 = false, bool mean = false);

// out[i] = min(max(x[i], lo), hi) as np.maximum / np.minimum give them (NaN kept; the bound
// where they compare equal: -0 and 0), each bound only where has_lo / has_hi (ir/ops clip).
// out[i] = x[i] > 0 ? x[i] : alpha[(i / inner) % C] * x[i] over planes * inner values (prelu:
// the reference's double product rounded once is this float product, bit for bit)
void prelu(const float* x, const float* alpha, int64_t C, int64_t planes, int64_t inner, float* out, int threads);

// out[o * inner + i] = the max (min) over r < R of x[(o * R + r) * inner + i], NaN where any is
// NaN (np.max / np.min); R > 0. index: null, or where the position r of the first maximum
// (minimum) goes instead, a NaN counting as both (np.argmax / np.argmin).
void reduce_extreme(const float* x, int64_t outer, int64_t R, int64_t inner, bool max, float* out,
                    int64_t* index);

// The other float32 reductions over r < R of x[(o * R + r) * inner + i], in double and rounded
// once like the references: the product, the variance (sum of squared deviations from the mean over
// max(0, R - correction)), log-sum-exp (shifted by the finite max); R > 0.
enum class Reduction { Prod, Var, LogSumExp };
void reduce_float(Reduction kind, const float* x, int64_t outer, int64_t R, int64_t inner, float* out,
                  double correction);

// np.any / np.all over the same layout of x's truth values (nonzero, NaN true), one byte each.
void reduce_truth(bool all, const uint8_t* truth, int64_t outer, int64_t R, int64_t inner, uint8_t* out);

void clip(const float* x, float* out, int64_t n, bool has_lo, float lo, bool has_hi, float hi);
// the reference fake_quantize (ir/ops/compressed.py): int8 around 0 where zero_point < 0, else
// uint8 with that zero point; scale > 0, checked by the caller
void fake_quantize(const float* x, float* out, int64_t n, float scale, int zero_point);
// the references quantize_rows / dequantize_rows (ir/ops/rowquant.py) over `rows` rows of E:
// scale[r] = max |x[r]| / 127, q = round(x / scale) clipped to +-127 (0 where not finite); and
// out = q * scale
void quantize_rows(const float* x, int64_t rows, int64_t E, int8_t* q, float* scale);
void dequantize_rows(const int8_t* q, const float* scale, int64_t rows, int64_t E, float* out);

// logic.cpp. Operands are read through byte strides over `shape` (0 on broadcast axes); out is
// C-contiguous. Bool is one byte, nonzero true (the references' "nonzero is true"), written 0/1.
enum class CompareOp { Eq, Ne, Lt, Le, Gt, Ge };
enum class LogicalOp { And, Or, Xor };
// a op b for two operands of one type t (F32 with IEEE comparisons: NaN unordered; I64; Bool)
void compare(CompareOp op, Type t, const void* a, const int64_t* sa, const void* b, const int64_t* sb,
             uint8_t* out, const int64_t* shape, int rank);
void logical(LogicalOp op, const uint8_t* a, const int64_t* sa, const uint8_t* b, const int64_t* sb,
             uint8_t* out, const int64_t* shape, int rank);
// int64 add, sub, mul wrapping around as NumPy's (op Div: not taken)
void binary_i64(BinaryOp op, const int64_t* a, const int64_t* sa, const int64_t* b, const int64_t* sb,
                int64_t* out, const int64_t* shape, int rank);
// out = c ? x : y, x and y of itemsize bytes each (1, 2, 4 or 8)
void where(const uint8_t* c, const int64_t* sc, const void* x, const int64_t* sx, const void* y,
           const int64_t* sy, int itemsize, void* out, const int64_t* shape, int rank);

}  // namespace elementwise
}  // namespace pocketml
