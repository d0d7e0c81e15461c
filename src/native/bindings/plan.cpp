// Bindings of plan/: _native.Program, built once per function from runtime/native.py's step
// specs, run once per call. NumPy arrays become Tensors that keep their array alive (and are
// handed back as the same object when no view was applied); Tensors made here go back to NumPy
// as arrays that keep their buffer alive. Everything a spec says is checked here.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "kernels/linear/linear.h"
#include "plan/program.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;
using plan::DType;
using plan::Tensor;

struct PyOwner {
  nb::object obj;
};

DType dtype_of(const nb::dlpack::dtype& d) {
  const int bits = d.bits;
  if (d.lanes != 1) return DType::Other;
  switch (static_cast<Code>(d.code)) {
    case Code::Float: return bits == 32 ? DType::F32 : bits == 64 ? DType::F64 : bits == 16 ? DType::F16 : DType::Other;
    case Code::Int:
      return bits == 64 ? DType::I64 : bits == 32 ? DType::I32 : bits == 16 ? DType::I16 : bits == 8 ? DType::I8 : DType::Other;
    case Code::UInt:
      return bits == 64 ? DType::U64 : bits == 32 ? DType::U32 : bits == 16 ? DType::U16 : bits == 8 ? DType::U8 : DType::Other;
    case Code::Bool: return bits == 8 ? DType::Bool : DType::Other;
    case Code::Complex: return bits == 64 ? DType::C64 : bits == 128 ? DType::C128 : DType::Other;
    default: return DType::Other;
  }
}

nb::dlpack::dtype dlpack_of(DType t) {
  nb::dlpack::dtype d;
  d.lanes = 1;
  d.bits = static_cast<uint8_t>(plan::itemsize_of(t) * 8);
  switch (t) {
    case DType::F32: case DType::F64: case DType::F16: d.code = static_cast<uint8_t>(Code::Float); break;
    case DType::I64: case DType::I32: case DType::I16: case DType::I8: d.code = static_cast<uint8_t>(Code::Int); break;
    case DType::U64: case DType::U32: case DType::U16: case DType::U8: d.code = static_cast<uint8_t>(Code::UInt); break;
    case DType::Bool: d.code = static_cast<uint8_t>(Code::Bool); break;
    case DType::C64: case DType::C128: d.code = static_cast<uint8_t>(Code::Complex); break;
    default: type_error("internal: a value of unknown dtype");
  }
  return d;
}

// A NumPy array (or what numpy.asarray makes of h) as a Tensor holding it.
Tensor to_tensor(nb::handle h, const char* what) {
  nb::ndarray<nb::ro, nb::device::cpu> a;
  nb::object obj = nb::borrow(h);
  if (!nb::try_cast(obj, a, false)) {
    obj = nb::module_::import_("numpy").attr("ascontiguousarray")(h);
    if (!nb::try_cast(obj, a, false))
      type_error(std::string(what) + ": not an array of a numeric dtype");
  }
  Tensor t;
  t.dtype = dtype_of(a.dtype());
  if (t.dtype == DType::Other) type_error(std::string(what) + ": unsupported dtype");
  t.itemsize = plan::itemsize_of(t.dtype);
  if (a.ndim() > static_cast<size_t>(plan::kMaxRank))
    value_error(std::string(what) + ": more than " + std::to_string(plan::kMaxRank) + " dimensions");
  t.rank = static_cast<int>(a.ndim());
  for (int i = 0; i < t.rank; ++i) {
    t.shape[i] = static_cast<int64_t>(a.shape(i));
    t.strides[i] = a.stride(i) * t.itemsize;
  }
  t.data = const_cast<void*>(a.data());
  t.readonly = !nb::cast<bool>(obj.attr("flags").attr("writeable"));
  t.owner = std::make_shared<PyOwner>(PyOwner{obj});
  t.foreign = obj.is(h);
  return t;
}

nb::object to_python(const Tensor& t) {
  if (!t.present()) return nb::none();
  if (t.foreign) return static_cast<PyOwner*>(t.owner.get())->obj;
  size_t shape[plan::kMaxRank];
  int64_t strides[plan::kMaxRank];
  for (int i = 0; i < t.rank; ++i) {
    shape[i] = static_cast<size_t>(t.shape[i]);
    strides[i] = t.strides[i] / t.itemsize;
  }
  nb::capsule owner(new std::shared_ptr<void>(t.owner), [](void* p) noexcept {
    delete static_cast<std::shared_ptr<void>*>(p);
  });
  const nb::dlpack::dtype d = dlpack_of(t.dtype);
  if (t.readonly)
    return nb::ndarray<nb::numpy, nb::ro>(t.data, static_cast<size_t>(t.rank), shape, owner, strides, d).cast();
  return nb::ndarray<nb::numpy>(t.data, static_cast<size_t>(t.rank), shape, owner, strides, d).cast();
}

std::vector<int> ints(nb::handle h) {
  std::vector<int> v;
  for (nb::handle x : h) v.push_back(nb::cast<int>(x));
  return v;
}

// a list of ints (constants) and 1-tuples (index into the call's dimension table)
plan::Dims dims(nb::handle h, int nsyms) {
  plan::Dims v;
  if (h.is_none()) return v;
  for (nb::handle x : h) {
    plan::Dim d;
    if (nb::isinstance<nb::tuple>(x)) {
      d.sym = nb::cast<int>(x[0]);
      if (d.sym < 0 || d.sym >= nsyms) value_error("a dimension refers to no entry of the table");
    } else {
      d.value = nb::cast<int64_t>(x);
    }
    v.push_back(d);
  }
  if (v.size() > static_cast<size_t>(plan::kMaxRank)) value_error("more than 8 dimensions in a view");
  return v;
}

plan::ViewKind view_kind(const std::string& k) {
  if (k == "reshape") return plan::ViewKind::Reshape;
  if (k == "transpose") return plan::ViewKind::Transpose;
  if (k == "squeeze") return plan::ViewKind::Squeeze;
  if (k == "expand_dims") return plan::ViewKind::ExpandDims;
  if (k == "expand") return plan::ViewKind::Expand;
  if (k == "slice") return plan::ViewKind::Slice;
  value_error("unknown view op '" + k + "'");
}

// an IR dtype name (ir/types.py)
DType dtype_named(const std::string& n) {
  if (n == "float32") return DType::F32;
  if (n == "float16") return DType::F16;
  if (n == "int64") return DType::I64;
  if (n == "int32") return DType::I32;
  if (n == "int16") return DType::I16;
  if (n == "int8") return DType::I8;
  if (n == "uint8") return DType::U8;
  if (n == "bool") return DType::Bool;
  value_error("unknown dtype '" + n + "'");
}

elementwise::UnaryOp unary_named(const std::string& n) {
  using elementwise::UnaryOp;
  if (n == "neg") return UnaryOp::Neg;
  if (n == "exp") return UnaryOp::Exp;
  if (n == "sin") return UnaryOp::Sin;
  if (n == "cos") return UnaryOp::Cos;
  if (n == "tanh") return UnaryOp::Tanh;
  if (n == "log") return UnaryOp::Log;
  if (n == "sigmoid") return UnaryOp::Sigmoid;
  if (n == "relu") return UnaryOp::Relu;
  if (n == "abs") return UnaryOp::Abs;
  if (n == "sign") return UnaryOp::Sign;
  if (n == "floor") return UnaryOp::Floor;
  if (n == "ceil") return UnaryOp::Ceil;
  if (n == "round") return UnaryOp::Round;
  if (n == "trunc") return UnaryOp::Trunc;
  if (n == "sqrt") return UnaryOp::Sqrt;
  if (n == "rsqrt") return UnaryOp::Rsqrt;
  if (n == "reciprocal") return UnaryOp::Reciprocal;
  if (n == "exp2") return UnaryOp::Exp2;
  if (n == "expm1") return UnaryOp::Expm1;
  if (n == "log2") return UnaryOp::Log2;
  if (n == "log10") return UnaryOp::Log10;
  if (n == "log1p") return UnaryOp::Log1p;
  if (n == "tan") return UnaryOp::Tan;
  if (n == "atan") return UnaryOp::Atan;
  if (n == "erf") return UnaryOp::Erf;
  if (n == "hardsigmoid") return UnaryOp::HardSigmoid;
  if (n == "hardswish") return UnaryOp::HardSwish;
  if (n == "mish") return UnaryOp::Mish;
  if (n == "log_sigmoid") return UnaryOp::LogSigmoid;
  if (n == "gelu_tanh") return UnaryOp::GeluTanh;
  if (n == "leaky_relu") return UnaryOp::LeakyRelu;
  if (n == "elu") return UnaryOp::Elu;
  if (n == "softplus") return UnaryOp::Softplus;
  value_error("unknown unary op '" + n + "'");
}

struct Program {
  plan::Program prog;
  std::vector<nb::object> keep;  // the packed weights and constants the steps point into
  int nstates = 0, nsyms = 0;

  Program(int nslots, nb::handle input_slots, nb::handle output_slots, nb::handle constants,
          nb::handle steps, int nstates_, int nsyms_, int threads) {
    nstates = nstates_;
    nsyms = nsyms_;
    if (nslots < 0 || threads < 0 || nstates < 0 || nsyms < 0) value_error("negative count");
    prog.nslots = nslots;
    prog.threads = threads;
    auto slot = [&](int s, bool allow_absent) {
      if (s < (allow_absent ? -1 : 0) || s >= nslots) value_error("slot " + std::to_string(s) + " out of range");
      return s;
    };
    for (int s : ints(input_slots)) prog.input_slots.push_back(slot(s, false));
    for (int s : ints(output_slots)) prog.output_slots.push_back(slot(s, false));
    for (nb::handle c : constants) {
      const int s = slot(nb::cast<int>(c[0]), false);
      prog.constants.emplace_back(s, to_tensor(c[1], "constant"));
    }
    for (nb::handle h : steps) {
      plan::Step st;
      const std::string kind = nb::cast<std::string>(h[0]);
      for (int s : ints(h[1])) st.inputs.push_back(slot(s, true));
      for (int s : ints(h[2])) st.outputs.push_back(slot(s, false));
      for (int s : ints(h[3])) st.release.push_back(slot(s, false));
      for (nb::handle v : h[4]) {
        plan::View view;
        view.pos = nb::cast<int>(v[0]);
        if (view.pos < 0 || view.pos >= static_cast<int>(st.inputs.size())) value_error("view of no input");
        view.kind = view_kind(nb::cast<std::string>(v[1]));
        view.a = dims(v[2], nsyms);
        view.b = dims(v[3], nsyms);
        view.c = dims(v[4], nsyms);
        view.d = dims(v[5], nsyms);
        if (view.kind == plan::ViewKind::Slice &&
            (view.b.size() != view.a.size() || view.c.size() != view.a.size() ||
             (!view.d.empty() && view.d.size() != view.a.size())))
          value_error("slice: axes, begin, end and step differ in length");
        st.views.push_back(std::move(view));
      }
      nb::dict p = nb::cast<nb::dict>(h[5]);
      auto need = [&](size_t n) {
        if (st.inputs.size() < n) value_error(kind + " step with too few inputs");
      };
      if (kind == "fallback") {
        st.kind = plan::Kind::Fallback;
      } else if (kind == "copy") {
        st.kind = plan::Kind::Copy;
        need(1);
      } else if (kind == "decode") {
        st.kind = plan::Kind::Decode;
        nb::object w = p["weight"];
        st.weight = packed_weight(w);
        if (!st.weight) type_error("weight must be a PackedLinear");
        keep.push_back(w);
        st.dtype = dtype_named(nb::cast<std::string>(p["dtype"]));
        if (st.dtype != plan::DType::F32 && st.dtype != plan::DType::F16) value_error("decode: float32 or float16 out");
      } else if (kind == "linear" || kind == "embedding") {
        st.kind = kind == "linear" ? plan::Kind::Linear : plan::Kind::Embedding;
        need(kind == "linear" ? 1 : 2);
        nb::object w = p["weight"];
        st.weight = packed_weight(w);
        if (!st.weight) type_error("weight must be a PackedLinear");
        keep.push_back(w);
        st.exact = p.contains("exact") ? nb::cast<bool>(p["exact"]) : true;
        if (kind == "linear" && p.contains("act") && !p["act"].is_none()) {
          const std::string act = nb::cast<std::string>(p["act"]);
          if (act != "gelu" && act != "silu") value_error("linear act must be 'gelu' or 'silu', got '" + act + "'");
          st.linear_act = true;
          st.act = act == "gelu" ? activation::Kind::GeluErf : activation::Kind::Silu;
        }
        st.residual = kind == "linear" && p.contains("residual") && nb::cast<bool>(p["residual"]);
        if (st.residual) need(4);
      } else if (kind == "linear_group") {
        st.kind = plan::Kind::LinearGroup;
        nb::list ws = nb::cast<nb::list>(p["weights"]);
        if (ws.size() < 1 || ws.size() > static_cast<size_t>(linear::kMaxGroup))
          value_error("linear_group takes 1 to " + std::to_string(linear::kMaxGroup) + " weights");
        for (nb::handle w : ws) {
          const WeightView* v = packed_weight(w);
          if (!v) type_error("weights must be PackedLinear");
          if (v->K != (st.weights.empty() ? v->K : st.weights[0]->K))
            value_error("linear_group weights must share K");
          st.weights.push_back(v);
          keep.push_back(nb::borrow(w));
        }
        need(1);
        if (st.inputs.size() > 1 + ws.size()) value_error("linear_group step with too many inputs");
        st.exact = p.contains("exact") ? nb::cast<bool>(p["exact"]) : true;
      } else if (kind == "sdpa") {
        st.kind = plan::Kind::Sdpa;
        need(3);
        st.scale = p.contains("scale") ? nb::cast<double>(p["scale"]) : 0.0;
        st.causal = p.contains("causal") && nb::cast<bool>(p["causal"]);
        st.k8 = p.contains("k8") && nb::cast<bool>(p["k8"]);
        st.v8 = p.contains("v8") && nb::cast<bool>(p["v8"]);
        if (st.k8 || st.v8) need(6);
      } else if (kind == "rms_norm" || kind == "layer_norm") {
        st.kind = kind == "rms_norm" ? plan::Kind::RmsNorm : plan::Kind::LayerNorm;
        need(1);
        st.eps = nb::cast<double>(p["eps"]);
        if (!(st.eps >= 0) || st.eps > 1e300) value_error("eps must be finite and >= 0");
      } else if (kind == "activation") {
        st.kind = plan::Kind::Activation;
        const std::string act = nb::cast<std::string>(p["act"]);
        if (act == "gelu")
          st.act = activation::Kind::GeluErf;
        else if (act == "silu")
          st.act = activation::Kind::Silu;
        else
          value_error("unknown activation '" + act + "'");
        st.gated = p.contains("gated") && nb::cast<bool>(p["gated"]);
        st.exact = p.contains("exact") ? nb::cast<bool>(p["exact"]) : true;
        need(st.gated ? 2 : 1);
      } else if (kind == "rotary") {
        st.kind = plan::Kind::Rotary;
        need(3);
      } else if (kind == "binary") {
        st.kind = plan::Kind::Binary;
        need(2);
        const std::string op = nb::cast<std::string>(p["op"]);
        using elementwise::BinaryOp;
        st.op = op == "add" ? BinaryOp::Add : op == "sub" ? BinaryOp::Sub : op == "mul" ? BinaryOp::Mul
              : op == "div" ? BinaryOp::Div : op == "maximum" ? BinaryOp::Max : op == "minimum" ? BinaryOp::Min
              : op == "pow" ? BinaryOp::Pow : op == "fmod" ? BinaryOp::Fmod : op == "remainder" ? BinaryOp::Remainder
              : (value_error("unknown binary op '" + op + "'"), BinaryOp::Add);
      } else if (kind == "read_state" || kind == "write_state" || kind == "update_state_slice") {
        st.kind = kind == "read_state"    ? plan::Kind::ReadState
                  : kind == "write_state" ? plan::Kind::WriteState
                                          : plan::Kind::UpdateState;
        need(kind == "read_state" ? 0 : 1);
        st.state = nb::cast<int>(p["state"]);
        if (st.state < 0 || st.state >= nstates) value_error("state index out of range");
        if (st.kind == plan::Kind::UpdateState) {
          st.axes = dims(p["axes"], nsyms);
          st.begin = dims(p["begin"], nsyms);
          st.end = dims(p["end"], nsyms);
          st.step = p.contains("step") ? dims(p["step"], nsyms) : plan::Dims();
        }
      } else if (kind == "slice_update") {
        st.kind = plan::Kind::SliceUpdate;
        need(2);
        st.axes = dims(p["axes"], nsyms);
        st.begin = dims(p["begin"], nsyms);
        st.end = dims(p["end"], nsyms);
        st.step = p.contains("step") ? dims(p["step"], nsyms) : plan::Dims();
        if (st.begin.size() != st.axes.size() || st.end.size() != st.axes.size() ||
            (!st.step.empty() && st.step.size() != st.axes.size()))
          value_error("slice_update: axes, begin, end and step differ in length");
      } else if (kind == "arange") {
        st.kind = plan::Kind::Arange;
        st.begin = dims(p["start"], nsyms);
        st.end = dims(p["end"], nsyms);
        st.step = dims(p["step"], nsyms);
        if (st.begin.size() != 1 || st.end.size() != 1 || st.step.size() != 1)
          value_error("arange: start, end and step must be one dimension each");
        st.dtype = dtype_named(nb::cast<std::string>(p["dtype"]));
      } else if (kind == "cast") {
        st.kind = plan::Kind::Cast;
        need(1);
        st.dtype = dtype_named(nb::cast<std::string>(p["dtype"]));
      } else if (kind == "concat") {
        st.kind = plan::Kind::Concat;
        need(1);
        st.axis = nb::cast<int>(p["axis"]);
      } else if (kind == "unary") {
        st.kind = plan::Kind::Unary;
        need(1);
        st.unary = unary_named(nb::cast<std::string>(p["op"]));
        if (p.contains("params")) {
          auto params = nb::cast<std::vector<double>>(p["params"]);
          if (params.size() > elementwise::kUnaryParams) value_error("too many unary params");
          std::copy(params.begin(), params.end(), st.unary_params);
        }
      } else if (kind == "reduce_sum" || kind == "reduce_norm2" || kind == "reduce_mean" || kind == "reduce_max" ||
                 kind == "reduce_min" || kind == "argmax" || kind == "argmin" || kind == "reduce_prod" ||
                 kind == "reduce_var" || kind == "reduce_logsumexp" || kind == "reduce_any" || kind == "reduce_all") {
        st.kind = plan::Kind::ReduceSum;
        st.l2 = kind == "reduce_norm2";
        st.mean = kind == "reduce_mean";
        using plan::Reduce;
        st.reduce = kind == "reduce_max" ? Reduce::Max : kind == "reduce_min" ? Reduce::Min
                  : kind == "argmax" ? Reduce::ArgMax : kind == "argmin" ? Reduce::ArgMin
                  : kind == "reduce_prod" ? Reduce::Prod : kind == "reduce_var" ? Reduce::Var
                  : kind == "reduce_logsumexp" ? Reduce::LogSumExp : kind == "reduce_any" ? Reduce::Any
                  : kind == "reduce_all" ? Reduce::All : Reduce::Sum;
        if (kind == "reduce_var") st.correction = nb::cast<double>(p["correction"]);
        need(1);
        if (!p["axes"].is_none()) {
          st.reduce_axes = nb::cast<std::vector<int>>(p["axes"]);
          if (st.reduce_axes.empty()) value_error("reduce_sum: axes must be None or not empty");
        }
        st.keepdims = nb::cast<bool>(p["keepdims"]);
      } else if (kind == "compare") {
        st.kind = plan::Kind::Compare;
        need(2);
        const std::string op = nb::cast<std::string>(p["op"]);
        using elementwise::CompareOp;
        if (op == "equal") st.cmp = CompareOp::Eq;
        else if (op == "not_equal") st.cmp = CompareOp::Ne;
        else if (op == "less") st.cmp = CompareOp::Lt;
        else if (op == "less_equal") st.cmp = CompareOp::Le;
        else if (op == "greater") st.cmp = CompareOp::Gt;
        else if (op == "greater_equal") st.cmp = CompareOp::Ge;
        else value_error("unknown comparison '" + op + "'");
      } else if (kind == "logical") {
        st.kind = plan::Kind::Logical;
        need(2);
        const std::string op = nb::cast<std::string>(p["op"]);
        using elementwise::LogicalOp;
        if (op == "logical_and") st.logic = LogicalOp::And;
        else if (op == "logical_or") st.logic = LogicalOp::Or;
        else if (op == "logical_xor") st.logic = LogicalOp::Xor;
        else value_error("unknown logical op '" + op + "'");
      } else if (kind == "where") {
        st.kind = plan::Kind::Where;
        need(3);
      } else if (kind == "clip") {
        st.kind = plan::Kind::Clip;
        need(1);
        st.has_lo = !p["min"].is_none();
        st.has_hi = !p["max"].is_none();
        if (st.has_lo) st.lo = static_cast<float>(nb::cast<double>(p["min"]));  // as astype(float32)
        if (st.has_hi) st.hi = static_cast<float>(nb::cast<double>(p["max"]));
      } else if (kind == "fake_quantize") {
        st.kind = plan::Kind::FakeQuantize;
        need(1);
        st.scale = static_cast<float>(nb::cast<double>(p["scale"]));  // as the float32 reference
        st.zero_point = p["zero_point"].is_none() ? -1 : nb::cast<int>(p["zero_point"]);
        if (!(st.scale > 0.0) || !std::isfinite(st.scale) || st.zero_point < -1 || st.zero_point > 255)
          value_error("fake_quantize: scale must be finite and > 0, zero_point None or in [0, 255]");
      } else if (kind == "quantize_rows" || kind == "dequantize_rows") {
        st.kind = kind == "quantize_rows" ? plan::Kind::QuantizeRows : plan::Kind::DequantizeRows;
        need(kind == "quantize_rows" ? 1 : 2);
      } else if (kind == "take" || kind == "gather" || kind == "cumsum" || kind == "cumprod") {
        st.kind = kind == "take" ? plan::Kind::Take : kind == "gather" ? plan::Kind::Gather : plan::Kind::Cumsum;
        need(kind == "take" || kind == "gather" ? 2 : 1);
        st.axis = nb::cast<int>(p["axis"]);
        st.negative = kind == "take" && nb::cast<bool>(p["negative"]);
        st.product = kind == "cumprod";
      } else if (kind == "adaptive_avg_pool" || kind == "adaptive_max_pool") {
        st.kind = plan::Kind::AdaptivePool;
        need(1);
        st.max = kind == "adaptive_max_pool";
        st.pad_widths = nb::cast<std::vector<int64_t>>(p["output_size"]);
      } else if (kind == "full" || kind == "full_like") {
        st.kind = plan::Kind::Fill;
        st.fill_like = kind == "full_like";
        need(st.fill_like ? 1 : 0);
        st.dtype = dtype_named(nb::cast<std::string>(p["dtype"]));
        const nb::bytes fill = nb::cast<nb::bytes>(p["bytes"]);
        st.fill.assign(fill.c_str(), fill.size());
        if (static_cast<int>(st.fill.size()) != plan::itemsize_of(st.dtype)) value_error("full: the value's size is not its dtype's");
        if (!st.fill_like) st.axes = dims(p["shape"], nsyms);
      } else if (kind == "scatter") {
        st.kind = plan::Kind::Scatter;
        need(3);
        st.axis = nb::cast<int>(p["axis"]);
        const std::string r = nb::cast<std::string>(p["reduce"]);
        st.tri_k = r == "none" ? 0 : r == "add" ? 1 : r == "mul" ? 2 : r == "max" ? 3 : r == "min" ? 4
                 : (value_error("unknown scatter reduce '" + r + "'"), 0);
      } else if (kind == "sort" || kind == "topk") {
        st.kind = plan::Kind::Sort;
        need(1);
        st.axis = nb::cast<int>(p["axis"]);
        st.upper = nb::cast<bool>(p["descending"]);
        st.tri_k = kind == "topk" ? nb::cast<int64_t>(p["k"]) : -1;
        if (kind == "topk" && st.tri_k < 0) value_error("topk: negative k");
      } else if (kind == "tile") {
        st.kind = plan::Kind::Tile;
        need(1);
        st.pad_widths = nb::cast<std::vector<int64_t>>(p["reps"]);
      } else if (kind == "tril" || kind == "triu") {
        st.kind = plan::Kind::Tri;
        need(1);
        st.upper = kind == "triu";
        st.tri_k = nb::cast<int64_t>(p["diagonal"]);
      } else if (kind == "pad") {
        st.kind = plan::Kind::Pad;
        need(1);
        const std::string mode = nb::cast<std::string>(p["mode"]);
        st.pad_mode = mode == "constant" ? 0 : mode == "reflect" ? 1 : mode == "replicate" ? 2
                    : mode == "circular" ? 3 : (value_error("unknown pad mode '" + mode + "'"), 0);
        st.pad_widths = nb::cast<std::vector<int64_t>>(p["pads"]);
        st.pad_value = nb::cast<double>(p["value"]);
      } else if (kind == "group_norm" || kind == "batch_norm") {
        st.kind = plan::Kind::ChannelNorm;
        need(1);
        st.eps = nb::cast<double>(p["eps"]);
        st.norm_groups = kind == "group_norm" ? nb::cast<int64_t>(p["groups"]) : 0;
        if (kind == "group_norm" && st.norm_groups < 1) value_error("group_norm: groups must be >= 1");
      } else if (kind == "einsum") {
        st.kind = plan::Kind::Einsum;
        need(2);
        st.pad_widths = nb::cast<std::vector<int64_t>>(p["layout"]);
      } else if (kind == "matmul" || kind == "linear_dense") {
        st.kind = plan::Kind::Matmul;
        need(2);
        st.linear_weight = kind == "linear_dense";
      } else if (kind == "conv_transpose") {
        st.kind = plan::Kind::ConvTranspose;
        need(2);
        plan::ConvSpec cs;
        cs.strides = nb::cast<std::vector<int64_t>>(p["strides"]);
        cs.dilations = nb::cast<std::vector<int64_t>>(p["dilations"]);
        cs.pads = nb::cast<std::vector<int64_t>>(p["pads"]);
        cs.groups = nb::cast<int64_t>(p["groups"]);
        st.pad_widths = nb::cast<std::vector<int64_t>>(p["output_padding"]);
        for (int64_t v : cs.pads)
          if (v < 0) value_error("conv_transpose: negative pad");
        for (int64_t v : st.pad_widths)
          if (v < 0) value_error("conv_transpose: negative output_padding");
        st.convs.push_back(std::move(cs));
      } else if (kind == "resize") {
        st.kind = plan::Kind::Resize;
        need(1);
        const std::string mode = nb::cast<std::string>(p["mode"]);
        using resize::Mode;
        st.resize_mode = mode == "nearest" ? Mode::Nearest : mode == "nearest_exact" ? Mode::NearestExact
                       : mode == "linear" ? Mode::Linear : mode == "cubic" ? Mode::Cubic
                       : (value_error("unknown resize mode '" + mode + "'"), Mode::Nearest);
        if (!p["sizes"].is_none()) st.resize_sizes = dims(p["sizes"], nsyms);
        if (!p["scales"].is_none()) st.resize_scales = nb::cast<std::vector<double>>(p["scales"]);
        if (st.resize_sizes.empty() == st.resize_scales.empty() && !st.resize_sizes.empty() &&
            st.resize_sizes.size() != st.resize_scales.size())
          value_error("resize: sizes and scales differ in length");
        if (st.resize_sizes.empty() && st.resize_scales.empty()) value_error("resize: no sizes or scales");
        st.align_corners = nb::cast<bool>(p["align_corners"]);
      } else if (kind == "split") {
        st.kind = plan::Kind::Split;
        need(1);
        st.axis = nb::cast<int>(p["axis"]);
        st.split_sizes = nb::cast<std::vector<int64_t>>(p["sizes"]);
        for (int64_t n : st.split_sizes)
          if (n < 0) value_error("split: negative size");
        if (st.split_sizes.empty()) value_error("split: no sizes");
      } else if (kind == "predicate") {
        st.kind = plan::Kind::Predicate;
        need(1);
        const std::string op = nb::cast<std::string>(p["op"]);
        using plan::Predicate;
        st.predicate = op == "isnan" ? Predicate::IsNan : op == "isinf" ? Predicate::IsInf : op == "logical_not"
                     ? Predicate::Not : (value_error("unknown predicate '" + op + "'"), Predicate::IsNan);
      } else if (kind == "prelu") {
        st.kind = plan::Kind::Prelu;
        need(2);
      } else if (kind == "softmax") {
        st.kind = plan::Kind::Softmax;
        need(1);
        st.axis = nb::cast<int>(p["axis"]);
        st.log = nb::cast<bool>(p["log"]);
      } else if (kind == "recurrent") {
        st.kind = plan::Kind::Recurrent;
        need(1);
        plan::RnnSpec& r = st.rnn;
        const std::string cell = nb::cast<std::string>(p["cell"]);
        using recurrent::Cell;
        r.cell = cell == "lstm" ? Cell::Lstm : cell == "gru" ? Cell::Gru : cell == "rnn_tanh" ? Cell::RnnTanh
               : cell == "rnn_relu" ? Cell::RnnRelu : (value_error("unknown recurrent cell '" + cell + "'"), Cell::Lstm);
        r.sequence = nb::cast<bool>(p["sequence"]);
        r.layers = nb::cast<int>(p["layers"]);
        r.bidirectional = nb::cast<bool>(p["bidirectional"]);
        r.batch_first = nb::cast<bool>(p["batch_first"]);
        r.biases = nb::cast<bool>(p["biases"]);
        r.proj = nb::cast<int64_t>(p["proj"]);
        if (r.layers < 1 || r.layers > 64 || r.proj < 0 || (r.proj > 0 && r.cell != Cell::Lstm))
          value_error("recurrent: bad layers or proj_size");
      } else if (kind == "pool") {
        st.kind = plan::Kind::Pool;
        need(1);
        plan::PoolSpec& ps = st.pool;
        ps.max = nb::cast<bool>(p["max"]);
        const auto kernel = nb::cast<std::vector<int64_t>>(p["kernel"]), strides = nb::cast<std::vector<int64_t>>(p["strides"]),
                   dil = nb::cast<std::vector<int64_t>>(p["dilations"]), pads = nb::cast<std::vector<int64_t>>(p["pads"]);
        ps.n = static_cast<int>(kernel.size());
        if ((ps.n != 1 && ps.n != 2) || strides.size() != kernel.size() || dil.size() != kernel.size() ||
            pads.size() != 2 * kernel.size())
          value_error("pool: 1 or 2 dims, with strides, dilations and [begin, end] pads for each");
        for (int i = 0; i < ps.n; ++i) {
          if (kernel[i] < 1 || strides[i] < 1 || dil[i] < 1 || pads[2 * i] < 0 || pads[2 * i + 1] < 0)
            value_error("pool: kernel, strides, dilations >= 1 and pads >= 0");
          ps.kernel[i] = kernel[i], ps.strides[i] = strides[i], ps.dilations[i] = dil[i];
          ps.pads[2 * i] = pads[2 * i], ps.pads[2 * i + 1] = pads[2 * i + 1];
        }
        ps.ceil_mode = nb::cast<bool>(p["ceil_mode"]);
        ps.count_include_pad = nb::cast<bool>(p["count_include_pad"]);
        ps.divisor = nb::cast<int64_t>(p["divisor"]);
      } else if (kind == "index" || kind == "index_put") {
        st.kind = kind == "index" ? plan::Kind::Index : plan::Kind::IndexPut;
        st.index_axes = nb::cast<std::vector<int>>(p["axes"]);
        if (st.index_axes.empty() || st.index_axes.size() > plan::kMaxRank) value_error("index: 1 to 8 axes");
        need((kind == "index" ? 1 : 2) + st.index_axes.size());
        st.upper = kind == "index_put" && nb::cast<bool>(p["accumulate"]);
      } else if (kind == "conv") {
        st.kind = plan::Kind::Conv;
        nb::list convs = nb::cast<nb::list>(p["convs"]);
        if (convs.size() < 1 || convs.size() > 2) value_error("conv step takes one or two convolutions");
        for (nb::handle h : convs) {
          nb::dict c = nb::cast<nb::dict>(h);
          plan::ConvSpec cs;
          cs.strides = nb::cast<std::vector<int64_t>>(c["strides"]);
          cs.pads = nb::cast<std::vector<int64_t>>(c["pads"]);
          cs.dilations = nb::cast<std::vector<int64_t>>(c["dilations"]);
          cs.groups = nb::cast<int64_t>(c["groups"]);
          cs.has_lo = !c["min"].is_none();
          cs.has_hi = !c["max"].is_none();
          if (cs.has_lo) cs.lo = static_cast<float>(nb::cast<double>(c["min"]));  // as astype(float32)
          if (cs.has_hi) cs.hi = static_cast<float>(nb::cast<double>(c["max"]));
          if ((cs.has_lo && std::isnan(cs.lo)) || (cs.has_hi && std::isnan(cs.hi))) value_error("conv: NaN clip bound");
          if (c.contains("weight") && !c["weight"].is_none()) {
            nb::object w = c["weight"];
            cs.weight = packed_weight(w);
            if (!cs.weight) type_error("conv weight must be a PackedLinear");
            keep.push_back(w);
            cs.wshape = nb::cast<std::vector<int64_t>>(c["wshape"]);
            int64_t k = 1;
            for (size_t i = 1; i < cs.wshape.size(); ++i) k *= cs.wshape[i];
            if (cs.wshape.size() < 3 || cs.wshape[0] != cs.weight->N || k != cs.weight->K)
              value_error("conv wshape does not match its packed weight");
            cs.int8 = c.contains("int8") && nb::cast<bool>(c["int8"]);
          }
          if (c.contains("act") && !c["act"].is_none()) {
            const std::string act = nb::cast<std::string>(c["act"]);
            if (act != "gelu" && act != "silu") value_error("conv act must be 'gelu' or 'silu', got '" + act + "'");
            if (cs.has_lo || cs.has_hi) value_error("conv: a clip or an activation, not both");
            cs.act = true;
            cs.act_kind = act == "gelu" ? activation::Kind::GeluErf : activation::Kind::Silu;
            cs.act_exact = !c.contains("exact") || nb::cast<bool>(c["exact"]);
          }
          st.convs.push_back(std::move(cs));
        }
        need(st.convs.size() == 1 ? 1 : 3);
      } else {
        value_error("unknown step kind '" + kind + "'");
      }
      const size_t nout = st.kind == plan::Kind::WriteState    ? 0
                          : st.kind == plan::Kind::LinearGroup ? st.weights.size()
                          : st.kind == plan::Kind::Split ? st.split_sizes.size()
                          : st.kind == plan::Kind::Sort || st.kind == plan::Kind::QuantizeRows ? 2
                          : st.kind == plan::Kind::Recurrent
                              ? static_cast<size_t>((st.rnn.sequence ? 1 : 0) + (st.rnn.cell == recurrent::Cell::Lstm ? 2 : 1))
                              : 1;
      if (st.kind != plan::Kind::Fallback && st.outputs.size() != nout)
        value_error(kind + " step must have " + std::to_string(nout) + " output(s)");
      prog.steps.push_back(std::move(st));
    }
  }

  nb::list run(nb::handle inputs, nb::handle states, nb::handle syms, nb::handle fallback) {
    std::vector<Tensor> ins, sts;
    for (nb::handle a : inputs) ins.push_back(to_tensor(a, "input"));
    for (nb::handle a : states) {
      sts.push_back(to_tensor(a, "state"));
      if (sts.back().readonly || !sts.back().foreign) value_error("a state must be a writable array");
    }
    if (static_cast<int>(sts.size()) != nstates)
      value_error("expected " + std::to_string(nstates) + " states, got " + std::to_string(sts.size()));
    std::vector<int64_t> table;
    for (nb::handle s : syms) table.push_back(nb::cast<int64_t>(s));
    if (static_cast<int>(table.size()) != nsyms)
      value_error("expected " + std::to_string(nsyms) + " resolved dimensions, got " + std::to_string(table.size()));
    plan::Fallback fb = [&](int i, std::vector<Tensor>& args, std::vector<Tensor>& outs) {
      nb::list a;
      for (const Tensor& t : args) a.append(to_python(t));
      nb::object r = fallback(i, a);
      for (nb::handle o : r) outs.push_back(to_tensor(o, "step output"));
    };
    std::vector<Tensor> res = prog.run(ins, sts, table, fb);
    nb::list out;
    for (const Tensor& t : res) out.append(to_python(t));
    return out;
  }
};

}  // namespace

void init_plan(nb::module_& m) {
  nb::class_<Program>(m, "Program", R"doc(A function's plan run natively (plan/program.h): the
steps loop in C++ and calls the kernels directly; a step they do not take goes to the fallback.
Built by runtime/native.py from the plan: Program(nslots, input_slots, output_slots, constants
[(slot, array)], steps [(kind, inputs, outputs, release, views, params)], nstates, nsyms,
threads).)doc")
      .def(nb::init<int, nb::handle, nb::handle, nb::handle, nb::handle, int, int, int>(),
           "nslots"_a, "input_slots"_a, "output_slots"_a, "constants"_a, "steps"_a, "nstates"_a,
           "nsyms"_a, "threads"_a)
      .def("run", &Program::run, "inputs"_a, "states"_a, "syms"_a, "fallback"_a.none(),
           "The outputs for inputs (arrays in input order); states: the live arrays, written in "
           "place; syms: the call's resolved dimensions; fallback(step, args) -> outputs runs a "
           "step's reference.")
      .def_prop_ro("current_step", [](const Program& p) { return p.prog.current_step; },
                   "The step that raised during the last call (-1: none).")
      .def_prop_ro("fallback_seconds", [](const Program& p) { return p.prog.fallback_seconds; },
                   "Seconds the last call spent in the fallback (Python).")
      .def_prop_ro("fallback_calls", [](const Program& p) { return p.prog.fallback_calls; },
                   "Steps the last call handed to the fallback.")
      .def_prop_rw(
          "profiling", [](const Program& p) { return p.prog.profiling; },
          [](Program& p, bool on) {
            p.prog.profiling = on;
            p.prog.step_seconds.assign(on ? p.prog.steps.size() : 0, 0.0);
          },
          "When True, each step's wall time (views, kernel or fallback, releases) is summed over "
          "calls into step_seconds; setting it clears them.")
      .def_prop_ro("step_seconds", [](const Program& p) {
        nb::list l;
        for (double v : p.prog.step_seconds) l.append(v);
        return l;
      }, "Seconds per step summed over the calls made while profiling.");
}

}  // namespace pocketml::bindings
