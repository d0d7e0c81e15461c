// A function's plan run natively: the step loop of runtime/executor.py in C++, so a decode step
// costs no Python per op. Steps with a native kernel (packed linear and embedding, attention,
// norms, activations, rotary, float32 arithmetic and math, cast, concat, arange, state reads and
// writes) run here, reading their inputs through the folded view ops (plan/views.h); a step the
// kernels do not take (an op without one, or arguments outside what its kernel handles: another
// dtype, rank or broadcast) is handed to a fallback, which runs its NumPy reference. Symbolic dimensions are resolved once
// per call by the caller (a table of integers the steps index). Buffers come from a pool kept
// between calls (plan/buffers.h).
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/weights.h"
#include "kernels/activation/activation.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/recurrent/recurrent.h"
#include "kernels/resize/resize.h"
#include "plan/buffers.h"
#include "plan/tensor.h"

namespace pocketml {
namespace plan {

// An integer attribute: a constant, or entry `sym` of the call's table of resolved dimensions.
struct Dim {
  int64_t value = 0;
  int sym = -1;
};
using Dims = std::vector<Dim>;

// d's value for this call: its constant, or entry `sym` of the call's table
inline int64_t resolve(const Dim& d, const std::vector<int64_t>& syms) {
  if (d.sym < 0) return d.value;
  if (d.sym >= static_cast<int>(syms.size())) throw std::out_of_range("dimension table too short");
  return syms[d.sym];
}

// dims resolved into out (at most kMaxRank); returns their count
inline int resolve_all(const Dims& ds, const std::vector<int64_t>& syms, int64_t* out) {
  if (ds.size() > static_cast<size_t>(kMaxRank)) throw std::invalid_argument("too many dimensions");
  for (size_t i = 0; i < ds.size(); ++i) out[i] = resolve(ds[i], syms);
  return static_cast<int>(ds.size());
}

inline bool is_f32(const Tensor& t) { return t.present() && t.dtype == DType::F32; }

// element strides of a float tensor (byte strides divided by 4; 0 on size-1 axes)
inline void float_strides(const Tensor& t, int64_t* s) {
  for (int i = 0; i < t.rank; ++i) s[i] = t.shape[i] == 1 ? 0 : t.strides[i] / 4;
}

enum class ViewKind { Reshape, Transpose, Squeeze, ExpandDims, Expand, Slice };

struct View {
  int pos = 0;  // which input it applies to
  ViewKind kind = ViewKind::Reshape;
  Dims a, b, c, d;  // reshape/expand: shape; transpose: perm; (expand_)squeeze: axes;
                    // slice: axes, begin, end, step
};

enum class Kind {
  Fallback,     // the caller's reference
  Linear,       // (x, -, bias?) with a packed weight
  LinearGroup,  // (x, bias_0?, ..., bias_n-1?) -> n outputs, packed weights of one K (gemm_group)
  Embedding,    // (-, ids) with a packed weight
  Sdpa,         // (q, k, v, mask?[, k scales, v scales]: int8 k / v where k8 / v8)
  RmsNorm,      // (x, weight?)
  LayerNorm,    // (x, weight?, bias?)
  Activation,   // (x) or, gated, (x, y): act(x) * y
  Rotary,       // (x, cos, sin)
  Binary,       // (x, y) float32
  ReadState,    // () -> the state
  WriteState,   // (value) -> nothing
  UpdateState,  // (update) -> the state, its slice axes/begin/end/step written
  SliceUpdate,  // (x, update) -> a copy of x, its slice axes/begin/end/step written
  Fill,         // () -> full(shape in axes), or (x) -> full_like(x): every element `fill`
  Arange,       // () -> [begin, begin + step, ...) up to end, as dtype
  Cast,         // (x) -> x as dtype
  Concat,       // (x, ...) joined along axis
  Unary,        // (x) float32 -> unary(x)
  ReduceSum,    // (x) float32 -> its sum (l2: 2-norm), max, min, argmax or argmin over
                // `reduce_axes` (consecutive axes)
  Clip,         // (x) float32 -> clip(x, lo, hi)
  FakeQuantize, // (x) float32 -> on the 8-bit grid of step `scale` (int8, or uint8 from zero_point)
  QuantizeRows, // (x) float32 -> (int8 rows, float32 scales [..., 1]): quantize_rows
  DequantizeRows, // (q int8, scales) -> float32: dequantize_rows
  Compare,      // (x, y) of one dtype -> bool
  Logical,      // (x, y) bool -> bool
  Where,        // (cond bool, x, y of one dtype) -> cond ? x : y
  Conv,         // (x, weight, bias?[, weight2, bias2?]) float32 1-D / 2-D convolution(s): `convs`
  Take,         // (x, indices) -> np.take along axis (plan/indexing.h)
  Gather,       // (x, indices) -> torch.gather along axis
  Index,        // (x, indices...) -> x[..., i0, i1, ...] on consecutive index_axes
  Cumsum,       // (x) int64 / float32 -> running sum (product: running product) along axis
  Tile,         // (x) -> np.tile(x, reps) (reps in pad_widths)
  IndexPut,     // (x, values, indices...) -> x[..., i0, i1, ...] = values (+= where `upper`) on index_axes
  Scatter,      // (x, indices, updates) -> torch.scatter along axis (reduce in tri_k: 0 none, 1 add,
                // 2 mul, 3 max, 4 min)
  Sort,         // (x) -> values, int64 positions along axis: sort (tri_k < 0) or topk (tri_k = k),
                // descending where `upper`
  Tri,          // (x) -> np.tril / np.triu (upper) with diagonal tri_k
  Pool,         // (x) float32 -> max or average pooling over its trailing 1 or 2 dims: `pool`
  Pad,          // (x) -> padded (pad_mode, pad_widths, pad_value: plan/indexing.h)
  Copy,         // (x) -> x through its views, copied (a view op whose output is the function's)
  Decode,       // (...) -> a packed weight decoded whole, [N, K] in dtype (a compressed weight that
                // feeds no fused kernel: a matmul's, say)
  ChannelNorm,  // group_norm (x, weight?, bias?) or batch_norm (x, mean?, var?, weight?, bias?)
  AdaptivePool,  // (x) float32 -> adaptive average (max) pooling to pad_widths (-1: kept)
  Einsum,       // (a, b) float32 -> einsum as a batched matrix product (its layout in pad_widths)
  Matmul,       // (x, y) float32 -> x @ y; linear_weight: (x, w, bias?) -> x @ w^T + bias
  ConvTranspose,  // (x, weight, bias?) float32, 1-D / 2-D: convs[0]'s attributes, output_padding
                  // in pad_widths
  Resize,       // (x) float32 -> resampled trailing dims (resize_*: nearest, nearest exact, linear)
  Split,        // (x) -> pieces of split_sizes along axis, each copied
  Predicate,    // (x) -> bool: isnan, isinf (float32), logical_not (float32, int64, bool)
  Prelu,        // (x, weight) float32 -> x > 0 ? x : weight[channel] * x
  Softmax,      // (x) float32 -> softmax (log: log_softmax) along axis
  Recurrent,    // a cell (x, h?, c?, w_ih, w_hh, b_ih?, b_hh?) -> h', c'? or a sequence (x, h0?,
                // c0?, weights...) -> out, h_n, c_n? (ir/ops/recurrent.py): `rnn`
};

enum class Predicate { IsNan, IsInf, Not };

// What a ReduceSum step computes over its axes.
enum class Reduce { Sum, Max, Min, ArgMax, ArgMin, Prod, Var, LogSumExp, Any, All };

// A pooling step's attributes (ir/ops/pool.py), n = 1 or 2 pooled dims.
struct PoolSpec {
  bool max = true;
  int n = 0;
  int64_t kernel[2] = {1, 1}, strides[2] = {1, 1}, dilations[2] = {1, 1}, pads[4] = {0, 0, 0, 0};
  bool ceil_mode = false, count_include_pad = true;
  int64_t divisor = 0;  // avg: divisor_override (0: none)
};

// A recurrent step's attributes (ir/ops/recurrent.py).
struct RnnSpec {
  recurrent::Cell cell = recurrent::Cell::Lstm;
  bool sequence = false;  // lstm / gru / rnn (else a *_cell)
  int layers = 1;
  bool bidirectional = false, batch_first = false, biases = true;
  int64_t proj = 0;  // LSTM proj_size (0: none)
};

// One convolution of a Conv step: its attributes, the clip after it, and its weight where packed
// (then the step's weight input is absent; `wshape` is the convolution's weight shape).
struct ConvSpec {
  std::vector<int64_t> strides, dilations, pads;  // one per spatial dim (pads: 2)
  int64_t groups = 1;
  bool has_lo = false, has_hi = false;
  float lo = 0.0f, hi = 0.0f;
  const WeightView* weight = nullptr;
  std::vector<int64_t> wshape;
  bool int8 = false;  // a packed pointwise weight may take int8 activations (conv::pointwise_int8)
  bool act = false;   // then GELU / SiLU (conv::Epilogue)
  activation::Kind act_kind = activation::Kind::GeluErf;
  bool act_exact = true;
};

struct Step {
  Kind kind = Kind::Fallback;
  std::vector<int> inputs;   // slots, -1: absent
  std::vector<int> outputs;  // slots
  std::vector<int> release;  // slots whose last use this is
  std::vector<View> views;   // applied in order to the inputs before the step runs
  const WeightView* weight = nullptr;  // Linear, Embedding
  std::vector<const WeightView*> weights;  // LinearGroup
  bool exact = true;                   // Linear, Activation (false: float32 forms)
  double eps = 0.0;                    // norms
  double scale = 0.0;                  // Sdpa: 0 = 1/sqrt(E); FakeQuantize: the grid's step
  bool causal = false;                 // Sdpa
  bool k8 = false, v8 = false;         // Sdpa: k (v) int8 rows, their scales input 4 (5)
  activation::Kind act = activation::Kind::Silu;  // Activation; Linear where linear_act
  bool gated = false;
  bool linear_act = false;  // Linear: its outputs through act (exact: of the activation too)
  bool residual = false;    // Linear: plus its input 3 (linear::Epilogue)
  elementwise::BinaryOp op = elementwise::BinaryOp::Add;
  elementwise::UnaryOp unary = elementwise::UnaryOp::Neg;
  double unary_params[elementwise::kUnaryParams] = {};  // Unary: the op's attributes
  DType dtype = DType::Other;   // Arange, Cast: the output's
  int axis = 0;                 // Concat, Take, Gather, Cumsum, Softmax
  bool log = false;             // Softmax: log_softmax
  bool product = false;         // Cumsum: cumprod
  std::string fill;             // Fill: one element's bytes, of dtype
  bool fill_like = false;       // Fill: x's shape
  bool max = false;             // AdaptivePool
  bool upper = false;           // Tri: triu
  int64_t tri_k = 0;            // Tri: the diagonal
  bool linear_weight = false;   // Matmul: a linear's (N, K) weight
  int64_t norm_groups = 0;      // ChannelNorm: group_norm's groups, 0 for batch_norm
  std::vector<int64_t> split_sizes;  // Split
  resize::Mode resize_mode = resize::Mode::Nearest;  // Resize: its sizes or its scales
  Dims resize_sizes;
  std::vector<double> resize_scales;
  bool align_corners = false;
  Predicate predicate = Predicate::IsNan;
  bool negative = false;        // Take: negative indices count from the end
  std::vector<int> index_axes;  // Index
  PoolSpec pool;                // Pool
  RnnSpec rnn;                  // Recurrent
  int pad_mode = 0;             // Pad: 0 constant, 1 reflect, 2 replicate, 3 circular
  std::vector<int64_t> pad_widths;
  double pad_value = 0.0;
  std::vector<int> reduce_axes;  // ReduceSum (empty: every axis)
  bool keepdims = false;         // ReduceSum
  bool l2 = false;               // ReduceSum
  bool mean = false;             // ReduceSum: divided by the count (reduce_mean)
  Reduce reduce = Reduce::Sum;   // ReduceSum: sum (l2, mean), max, min, the position of one, ...
  double correction = 1.0;       // ReduceSum: reduce_var's
  bool has_lo = false, has_hi = false;  // Clip
  float lo = 0.0f, hi = 0.0f;           // Clip
  int zero_point = -1;                  // FakeQuantize: -1 for int8
  // Conv: one convolution, or two: a pointwise one and a depthwise one over its output
  // (conv::pointwise_depthwise)
  std::vector<ConvSpec> convs;
  elementwise::CompareOp cmp = elementwise::CompareOp::Eq;  // Compare
  elementwise::LogicalOp logic = elementwise::LogicalOp::And;  // Logical
  int state = -1;               // state ops
  Dims axes, begin, end, step;  // UpdateState, SliceUpdate; Arange: begin, end, step (one each)
};

// Runs a step's reference: outs gets one Tensor per step output.
using Fallback = std::function<void(int step, std::vector<Tensor>& args, std::vector<Tensor>& outs)>;

class Program {
 public:
  int nslots = 0;
  int threads = 0;
  std::vector<Step> steps;
  std::vector<int> input_slots, output_slots;
  std::vector<std::pair<int, Tensor>> constants;

  // The outputs, given the inputs (in input_slots' order), the live states (written in place)
  // and the resolved dimension table.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, const std::vector<Tensor>& states,
                          const std::vector<int64_t>& syms, const Fallback& fallback);

  bool profiling = false;           // when set, each step's time is added to step_seconds
  std::vector<double> step_seconds;  // per step, summed over calls while profiling
  int current_step = -1;         // the step running, or that raised (-1: none)
  double fallback_seconds = 0;   // time spent in the fallback during the last call
  int64_t fallback_calls = 0;    // steps it ran during the last call

 private:
  BufferPool pool_;
  void apply_view(const View& v, Tensor& t, const std::vector<int64_t>& syms);
  bool execute(const Step& s, std::vector<Tensor>& args, std::vector<Tensor>& outs,
               const std::vector<Tensor>& states, const std::vector<int64_t>& syms);
};

}  // namespace plan
}  // namespace pocketml
