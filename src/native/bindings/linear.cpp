// Bindings of kernels/linear: _native.PackedLinear, a linear layer's packed weight bound once at
// model load (the NumPy arrays it was built from are referenced, never copied), with gemm/rows.
// Every array and number from Python is checked here, before any kernel sees it.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "kernels/linear/linear.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;

constexpr int64_t kMaxDim = int64_t(1) << 31;     // N, K each below this
constexpr int64_t kMaxCount = int64_t(1) << 40;   // N * K below this

std::string dtype_name(const nb::dlpack::dtype& d) {
  const char* kind = d.code == static_cast<uint8_t>(Code::Int)     ? "int"
                     : d.code == static_cast<uint8_t>(Code::UInt)  ? "uint"
                     : d.code == static_cast<uint8_t>(Code::Float) ? "float"
                     : d.code == static_cast<uint8_t>(Code::Bool)  ? "bool"
                                                                   : "other";
  return std::string(kind) + std::to_string(d.bits);
}

template <class A>
ScalarType scalar_type(const A& a) {
  const auto d = a.dtype();
  if (is(d, Code::Float, 32)) return ScalarType::F32;
  if (is(d, Code::Float, 16)) return ScalarType::F16;
  if (is(d, Code::Float, 64)) return ScalarType::F64;
  if (is(d, Code::Int, 8)) return ScalarType::I8;
  if (is(d, Code::UInt, 8)) return ScalarType::U8;
  return ScalarType::None;
}

template <class A>
void check_contiguous(const A& a, const std::string& what) {
  if (a.size() == 0) return;
  int64_t expected = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expected)
      value_error(what + " must be C-contiguous (use numpy.ascontiguousarray)");
    expected *= static_cast<int64_t>(a.shape(i));
  }
}

// An array of rank `ndim` and one of `types` (checked in that order), C-contiguous.
ScalarType check_array(const Array& a, const std::string& what, size_t ndim,
                       std::initializer_list<ScalarType> types, const char* allowed) {
  const ScalarType t = scalar_type(a);
  bool ok = false;
  for (ScalarType u : types) ok = ok || t == u;
  if (!ok) type_error(what + " must be " + allowed + ", got " + dtype_name(a.dtype()));
  if (a.ndim() != ndim)
    value_error(what + " must have rank " + std::to_string(ndim) + ", got shape " + shape_of(a));
  check_contiguous(a, what);
  return t;
}

int64_t dim(int64_t v, const char* name) {
  if (v < 1 || v >= kMaxDim)
    value_error(std::string(name) + " must lie in [1, 2**31), got " + std::to_string(v));
  return v;
}

void check_count(int64_t N, int64_t K) {
  if (N * K >= kMaxCount) value_error("the weight has too many elements: N * K >= 2**40");
}

int64_t packed_bytes(int64_t count, int nbits) { return (count * nbits + 7) / 8; }

void check_flat_codes(const Array& a, const std::string& what, int64_t count, int nbits) {
  check_array(a, what, 1, {ScalarType::U8}, "uint8");
  const int64_t need = packed_bytes(count, nbits);
  if (static_cast<int64_t>(a.shape(0)) < need)
    value_error(what + " has " + std::to_string(a.shape(0)) + " bytes, " + std::to_string(count) +
                " values of " + std::to_string(nbits) + " bits need " + std::to_string(need));
}

// Groups of a [G0, G1] parameter grid over [N, K].
void set_groups(WeightView& w, int64_t g0, int64_t g1, const std::string& what) {
  if (g0 < 1 || g1 < 1 || w.N % g0 || w.K % g1)
    value_error(what + " [" + std::to_string(g0) + ", " + std::to_string(g1) +
                "] must divide the weight shape [" + std::to_string(w.N) + ", " +
                std::to_string(w.K) + "]");
  w.groups_n = g0;
  w.groups_k = g1;
  w.group_rows = w.N / g0;
  w.group_cols = w.K / g1;
}

const char* grid(const WeightView& w, std::string& buf) {
  if (w.groups_n == 1 && w.groups_k == 1) return "tensor";
  if (w.groups_n == w.N && w.groups_k == 1) return "channel";
  if (w.groups_n == w.N) return (buf = "block" + std::to_string(w.group_cols)).c_str();
  // the grid's shape [GN, GK], like the lut's "g[G0,G1]"
  return (buf = "g[" + std::to_string(w.groups_n) + "," + std::to_string(w.groups_k) + "]")
      .c_str();
}

struct PackedLinear {
  WeightView w;
  std::vector<Array> keep;  // the arrays w points into
  // built here: the int8 copy of the tables (shared, so that copies keep w's pointers valid)
  std::shared_ptr<std::vector<int8_t>> lut_i8;
  std::shared_ptr<std::vector<float>> lut_i8_scale;
  // Sparse: the values' packed weight and the rows' offsets into it (shared like lut_i8)
  std::shared_ptr<PackedLinear> values;
  std::shared_ptr<std::vector<int64_t>> row_offset;
  std::string format;
  int64_t nbytes = 0;

  // Keeps `a` alive; `used` of its bytes are read by a full pass (all of them: -1).
  void hold(const Array& a, int64_t used = -1) {
    keep.push_back(a);
    nbytes += used < 0 ? static_cast<int64_t>(a.nbytes()) : used;
  }

  // A weight of `kind` and shape [N, K], both checked before anything else is read.
  static PackedLinear of(WeightKind kind, int64_t N, int64_t K) {
    PackedLinear p;
    p.w.kind = kind;
    p.w.N = dim(N, "N");
    p.w.K = dim(K, "K");
    check_count(N, K);
    return p;
  }

  static PackedLinear dense(const Array& a) {
    const ScalarType t = check_array(a, "dense weight", 2, {ScalarType::F32, ScalarType::F16},
                                     "float32 or float16");
    PackedLinear p = of(t == ScalarType::F32 ? WeightKind::F32 : WeightKind::F16,
                        static_cast<int64_t>(a.shape(0)), static_cast<int64_t>(a.shape(1)));
    p.w.nbits = t == ScalarType::F32 ? 32 : 16;
    p.w.data = static_cast<const uint8_t*>(a.data());
    p.hold(a);
    p.format = t == ScalarType::F32 ? "f32" : "f16";
    return p;
  }

  static PackedLinear quantized(const Array& data, const Array& scale,
                                const std::optional<Array>& zero, const std::string& dtype,
                                int64_t N, int64_t K) {
    PackedLinear p = of(WeightKind::Quant, N, K);
    WeightView& w = p.w;
    if (dtype == "int8" || dtype == "uint8")
      w.nbits = 8;
    else if (dtype == "int4" || dtype == "uint4")
      w.nbits = 4;
    else
      value_error("dtype must be one of 'int8', 'uint8', 'int4', 'uint4', got '" + dtype + "'");
    w.is_signed = dtype[0] == 'i';
    const ScalarType code = w.is_signed ? ScalarType::I8 : ScalarType::U8;
    const char* code_name = w.is_signed ? "int8" : "uint8";
    if (w.nbits == 8) {
      check_array(data, dtype + " data", 2, {code}, code_name);
      if (static_cast<int64_t>(data.shape(0)) != N || static_cast<int64_t>(data.shape(1)) != K)
        value_error(dtype + " data must have shape [" + std::to_string(N) + ", " +
                    std::to_string(K) + "], got " + shape_of(data));
    } else {
      check_flat_codes(data, dtype + " data", N * K, 4);
    }
    w.data = static_cast<const uint8_t*>(data.data());
    w.scale_type = check_array(scale, "scale", 2, {ScalarType::F32, ScalarType::F16},
                               "float32 or float16");
    set_groups(w, static_cast<int64_t>(scale.shape(0)), static_cast<int64_t>(scale.shape(1)),
               "scale shape");
    w.scale = scale.data();
    p.hold(data, packed_bytes(N * K, w.nbits));
    p.hold(scale);
    std::string buf;
    p.format = dtype + " " + grid(w, buf);
    if (zero) {
      w.zero_type = check_array(*zero, "zero_point", 2,
                                {code, ScalarType::F32, ScalarType::F16, ScalarType::F64},
                                w.is_signed ? "int8 or float" : "uint8 or float");
      if (zero->shape(0) != scale.shape(0) || zero->shape(1) != scale.shape(1))
        value_error("zero_point shape " + shape_of(*zero) + " differs from the scale's " +
                    shape_of(scale));
      w.zero = zero->data();
      p.hold(*zero);
      p.format += " zp";
    }
    return p;
  }

  static PackedLinear lut(const Array& indices, const Array& table, int nbits, int64_t N,
                          int64_t K, const std::optional<Array>& row_scale, bool int8_per_row) {
    PackedLinear p = of(WeightKind::Lut, N, K);
    WeightView& w = p.w;
    if (nbits < 1 || nbits > 8) value_error("nbits must lie in [1, 8], got " + std::to_string(nbits));
    w.nbits = nbits;
    check_flat_codes(indices, "indices", N * K, nbits);
    w.data = static_cast<const uint8_t*>(indices.data());
    w.lut_type = check_array(table, "lut", 4, {ScalarType::F32, ScalarType::F16},
                             "float32 or float16");
    if (static_cast<int64_t>(table.shape(2)) != (int64_t(1) << nbits) || table.shape(3) != 1)
      value_error("lut must have shape [G0, G1, " + std::to_string(1 << nbits) +
                  ", 1] for nbits=" + std::to_string(nbits) + ", got " + shape_of(table));
    set_groups(w, static_cast<int64_t>(table.shape(0)), static_cast<int64_t>(table.shape(1)),
               "lut groups");
    w.lut = table.data();
    p.hold(indices, packed_bytes(N * K, nbits));
    p.hold(table);
    p.format = "lut" + std::to_string(nbits) + " g[" + std::to_string(w.groups_n) + "," +
               std::to_string(w.groups_k) + "]";
    if (w.groups_k == 1) {  // for exact=False: int8 copies of the tables (2**nbits bytes) and a scale each
      w.lut_i8_rows = int8_per_row ? 1 : w.group_rows;
      const int64_t tables = (N + w.lut_i8_rows - 1) / w.lut_i8_rows;
      p.lut_i8 = std::make_shared<std::vector<int8_t>>(static_cast<size_t>(tables << nbits));
      p.lut_i8_scale = std::make_shared<std::vector<float>>(static_cast<size_t>(tables));
      linear::build_lut_i8(w, p.lut_i8->data(), p.lut_i8_scale->data());
      w.lut_i8 = p.lut_i8->data();
      w.lut_i8_scale = p.lut_i8_scale->data();
    }
    if (row_scale) {
      const Array& r = *row_scale;
      if (scalar_type(r) != ScalarType::F32)
        type_error("row_scale must be float32, got " + dtype_name(r.dtype()));
      const bool ok = (r.ndim() == 1 && static_cast<int64_t>(r.shape(0)) == N) ||
                      (r.ndim() == 2 && static_cast<int64_t>(r.shape(0)) == N && r.shape(1) == 1);
      if (!ok)
        value_error("row_scale must have shape [" + std::to_string(N) + "] or [" +
                    std::to_string(N) + ", 1], got " + shape_of(r));
      check_contiguous(r, "row_scale");
      w.row_scale = static_cast<const float*>(r.data());
      p.hold(r);
      p.format += " rowscale";
    }
    return p;
  }

  static PackedLinear sparse(const Array& mask, const PackedLinear& values, int64_t N, int64_t K) {
    PackedLinear p = of(WeightKind::Sparse, N, K);
    WeightView& w = p.w;
    w.nbits = 1;
    check_flat_codes(mask, "mask", N * K, 1);
    if (values.w.kind == WeightKind::Sparse) value_error("values must not be sparse themselves");
    if (values.w.N != 1)
      value_error("values must have shape [1, nnz], got [" + std::to_string(values.w.N) + ", " +
                  std::to_string(values.w.K) + "]");
    w.data = static_cast<const uint8_t*>(mask.data());
    p.row_offset = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(N + 1));
    int64_t* off = p.row_offset->data();
    off[0] = 0;
    for (int64_t n = 0; n < N; ++n) off[n + 1] = off[n] + linear::count_bits(w.data, n * K, (n + 1) * K);
    if (off[N] != values.w.K)
      value_error("mask has " + std::to_string(off[N]) + " set bits but " +
                  std::to_string(values.w.K) + " values were given");
    p.values = std::make_shared<PackedLinear>(values);
    w.row_offset = off;
    w.values = &p.values->w;
    p.hold(mask, packed_bytes(N * K, 1));
    p.nbytes += values.nbytes;
    p.format = "sparse " + values.format;
    return p;
  }

  // Raises when [a, a + na) and [b, b + nb) share a byte.
  static void check_disjoint(const void* a, size_t na, const void* b, size_t nb,
                             const char* what) {
    const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
    if (na && nb && x < y + nb && y < x + na) value_error(std::string("out overlaps ") + what);
  }

  // Raises when out shares a byte with any array the weight reads (a sparse weight's values too).
  void check_out_disjoint(const OutArray& out) const {
    for (const Array& a : keep) check_disjoint(out.data(), out.nbytes(), a.data(), a.nbytes(), "the weight");
    if (values) values->check_out_disjoint(out);
  }

  void check_out(const OutArray& out, int64_t rows, int64_t cols, const char* what) const {
    if (scalar_type(out) != ScalarType::F32)
      type_error(std::string(what) + " must be float32, got " + dtype_name(out.dtype()));
    if (out.ndim() != 2 || static_cast<int64_t>(out.shape(0)) != rows ||
        static_cast<int64_t>(out.shape(1)) != cols)
      value_error(std::string(what) + " must have shape [" + std::to_string(rows) + ", " +
                  std::to_string(cols) + "], got " + shape_of(out));
    check_contiguous(out, what);
    check_out_disjoint(out);
  }

  void gemm(const Array& x, OutArray out, const std::optional<Array>& bias, int threads,
            bool exact, const std::optional<Array>& residual, const std::optional<std::string>& act) const {
    check_array(x, "x", 2, {ScalarType::F32}, "float32");
    if (static_cast<int64_t>(x.shape(1)) != w.K)
      value_error("x must have shape [M, " + std::to_string(w.K) + "], got " + shape_of(x));
    const int64_t M = static_cast<int64_t>(x.shape(0));
    check_out(out, M, w.N, "out");
    check_disjoint(out.data(), out.nbytes(), x.data(), x.nbytes(), "x");
    const float* b = nullptr;
    if (bias) {
      check_array(*bias, "bias", 1, {ScalarType::F32}, "float32");
      if (static_cast<int64_t>(bias->shape(0)) != w.N)
        value_error("bias must have shape [" + std::to_string(w.N) + "], got " + shape_of(*bias));
      check_disjoint(out.data(), out.nbytes(), bias->data(), bias->nbytes(), "bias");
      b = static_cast<const float*>(bias->data());
    }
    if (threads < 0) value_error("threads must be >= 0 (0: default), got " + std::to_string(threads));
    linear::Epilogue ep;
    ep.act_exact = exact;
    if (residual) {
      check_array(*residual, "residual", 2, {ScalarType::F32}, "float32");
      if (static_cast<int64_t>(residual->shape(0)) != M || static_cast<int64_t>(residual->shape(1)) != w.N)
        value_error("residual must have shape [" + std::to_string(M) + ", " + std::to_string(w.N) + "], got " +
                    shape_of(*residual));
      check_disjoint(out.data(), out.nbytes(), residual->data(), residual->nbytes(), "residual");
      ep.residual = static_cast<const float*>(residual->data());
    }
    if (act) {
      if (*act != "gelu" && *act != "silu") value_error("act must be None, 'gelu' or 'silu', got '" + *act + "'");
      ep.has_act = true;
      ep.act = *act == "gelu" ? activation::Kind::GeluErf : activation::Kind::Silu;
    }
    const float* xp = static_cast<const float*>(x.data());
    float* op = static_cast<float*>(out.data());
    nb::gil_scoped_release release;
    linear::gemm(w, xp, M, b, op, threads, exact, residual || act ? &ep : nullptr);
  }

  void rows(const Array& ids, OutArray out, int threads) const {
    const auto d = ids.dtype();
    if (!is(d, Code::Int, 64)) type_error("ids must be int64, got " + dtype_name(d));
    if (ids.ndim() != 1) value_error("ids must have rank 1, got shape " + shape_of(ids));
    check_contiguous(ids, "ids");
    const int64_t L = static_cast<int64_t>(ids.shape(0));
    check_out(out, L, w.K, "out");
    if (threads < 0) value_error("threads must be >= 0 (0: default), got " + std::to_string(threads));
    const int64_t* id = static_cast<const int64_t*>(ids.data());
    for (int64_t i = 0; i < L; ++i)
      if (id[i] < 0 || id[i] >= w.N)
        value_error("rows: id " + std::to_string(id[i]) + " at position " + std::to_string(i) +
                    " is out of range [0, " + std::to_string(w.N) + ")");
    float* op = static_cast<float*>(out.data());
    nb::gil_scoped_release release;
    linear::gather_rows(w, id, L, op, threads);
  }
};

}  // namespace

const WeightView* packed_weight(nb::handle h) {
  PackedLinear* p = nullptr;
  if (!nb::try_cast(h, p) || p == nullptr) return nullptr;
  return &p->w;
}

void init_linear(nb::module_& m) {
  nb::class_<PackedLinear>(m, "PackedLinear", R"doc(A linear layer's packed weight W [N, K]
(out_features x in_features), bound once at model load: it references the NumPy arrays it was
built from (which may be memory-mapped and read-only) and never copies or unpacks them. Kernels
compute on the packed form directly (AVX2 where the CPU has it, else portable C++). Build with
PackedLinear.dense / .quantized / .lut / .sparse; every shape and dtype is checked there.)doc")
      .def_static("dense", &PackedLinear::dense, "w"_a,
                  "W as float32 or float16 [N, K], C-contiguous.")
      .def_static("quantized", &PackedLinear::quantized, "data"_a, "scale"_a,
                  "zero_point"_a.none(), "dtype"_a, "N"_a, "K"_a,
                  R"doc(Linear quantization, W[n, k] = (q - zero_point) * scale in float32.

dtype: 'int8' / 'uint8' (data int8 / uint8 [N, K]) or 'int4' / 'uint4' (data uint8 flat, at
least ceil(N*K/2) bytes: LSB-first nibbles of the row-major [N, K] codes, int4 in two's
complement; formats.pack_quantized). scale: float32/float16 [GN, GK], GN dividing N and GK
dividing K; element (n, k) uses scale[n // (N/GN), k // (K/GK)]. zero_point: None, or like
scale, int8/uint8 (the dtype's signedness) or float.)doc")
      .def_static("lut", &PackedLinear::lut, "indices"_a, "lut"_a, "nbits"_a, "N"_a, "K"_a,
                  "row_scale"_a = nb::none(), "int8_per_row"_a = false,
                  R"doc(Palettization, W[n, k] = lut[n // (N/G0), k // (K/G1), index, 0] (* row_scale[n]).

indices: uint8 flat, at least ceil(N*K*nbits/8) bytes, nbits-bit codes LSB-first over the
row-major [N, K] (formats.pack_bits); nbits in 1..8; lut: float32/float16 [G0, G1, 2**nbits,
1]; row_scale: None or float32 [N] or [N, 1]. int8_per_row: exact=False's int8 copy of the table
made per row (scaled to the entries the row uses: 2**nbits bytes a row) rather than per table.)doc")
      .def_static("sparse", &PackedLinear::sparse, "mask"_a, "values"_a, "N"_a, "K"_a,
                  R"doc(Pruning, W[n, k] = the next kept value where mask bit n * K + k is set,
else 0.

mask: uint8 flat, at least ceil(N*K/8) bytes, 1 bit per element LSB-first over the row-major
[N, K] (formats.sparse); values: a PackedLinear of shape [1, nnz] (dense, quantized or
palettized: the joint modes), nnz the mask's set bits (checked).)doc")
      .def("gemm", &PackedLinear::gemm, "x"_a, "out"_a, "bias"_a = nb::none(), "threads"_a = 0,
           "exact"_a = true, "residual"_a = nb::none(), "act"_a = nb::none(),
           R"doc(out[:] = x @ W.T (+ bias): x float32 [M, K], out float32 [M, N] (preallocated,
both C-contiguous, not overlapping), bias None or float32 [N]; threads 0: default_threads().
Computed in float32 without materialising W; the GIL is released. residual (float32 [M, N],
C-contiguous, not overlapping out) is then added and act ('gelu' erf form, 'silu'; exact as for
the layer, see _native.activation) applied, block by block while in cache: bit for bit the
separate add and activation.

exact=False (any M, AVX2; int8/uint8 and int4/uint4 codes with parameters per row or per
groups of a multiple of 32 columns, 4-bit LUTs with one table per group of rows): each row of x
is rounded to int8 per block of 32 columns (one float scale per block; 4-bit tables to an int8
copy with one scale per table) and multiplied in integer arithmetic, about 2-3x faster (decode
steps and prefills alike); the error grows like 1/254 of each block's max |x| per term (a
relative error of about 0.5 % of the row's magnitude for Gaussian data). Formats without that
path compute exactly.)doc")
      .def("rows", &PackedLinear::rows, "ids"_a, "out"_a, "threads"_a = 0,
           R"doc(Embedding gather: out[i] = W[ids[i]] decoded to float32; ids int64 [L], each
in [0, N) (all checked before anything is written), out float32 [L, K] C-contiguous.)doc")
      .def_prop_ro("shape", [](const PackedLinear& p) { return std::make_tuple(p.w.N, p.w.K); },
                   "(N, K)")
      .def_prop_ro("format", [](const PackedLinear& p) { return p.format; },
                   "e.g. 'f32', 'f16', 'int8 channel', 'int4 block32 zp', 'lut4 g[1,1]', 'sparse f32'.")
      .def_prop_ro("nbytes", [](const PackedLinear& p) { return p.nbytes; },
                   "Bytes of packed data (codes, scales, tables) a full pass reads.")
      .def_prop_ro("int8_rows", [](const PackedLinear& p) { return p.w.lut_i8 ? p.w.lut_i8_rows : 0; },
                   "Rows per int8 copy of a table (exact=False), 0 where there is none.")
      .def_prop_ro("int8_gemm", [](const PackedLinear& p) { return linear::int8_gemm(p.w); },
                   "Whether gemm(exact=False) of many rows takes this CPU's int8 GEMM (else it computes exactly).")
      .def("__repr__", [](const PackedLinear& p) {
        return "PackedLinear(" + p.format + ", shape=(" + std::to_string(p.w.N) + ", " +
               std::to_string(p.w.K) + "))";
      });
}

}  // namespace pocketml::bindings
