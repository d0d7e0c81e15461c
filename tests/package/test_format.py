"""The package format: round trip, alignment, atomic writes, and every kind of bad file."""
import json
import struct
import zlib

import numpy as np
import pytest

import pocketml as pm
from pocketml import package
from pocketml.ir import DType, Function, Op, Program, TensorType, Value
from pocketml.package.format import ALIGN, _PREFIX


def tiny_program():
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    packed = np.array([0b10110001, 0xFF, 7], dtype=np.uint8)  # non-float storage (packed indices)
    t = TensorType(DType.float32, (3, 4))
    fn = Function("main", [Value("x", t)], [
        Op("const", [], [Value("w", t)], {"weight": "layer.weight"}),
        Op("add", ["x", "w"], [Value("y", t)], loc="layer (model.py:3)"),
    ], ["y"])
    packed_fn = Function("other", [Value("x", t)], [
        Op("const", [], [Value("p", TensorType(DType.uint8, (3,)))], {"weight": "packed"}),
        Op("const", [], [Value("w", t)], {"weight": "layer.weight"}),
        Op("add", ["x", "w"], [Value("y", t)]),
    ], ["y"])
    return Program({"main": fn, "other": packed_fn}, {"layer.weight": w, "packed": packed})


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.pocket"
    package.write(path, tiny_program(), {"author": "me", "description": "tiny"})
    return path


def test_round_trip_keeps_program_weights_and_metadata(saved):
    prog, meta = package.read(saved)
    assert meta == {"author": "me", "description": "tiny"}
    assert list(prog.functions) == ["main", "other"]
    np.testing.assert_array_equal(prog.weights["layer.weight"], np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(prog.weights["packed"], [0b10110001, 0xFF, 7])
    assert prog.main.ops[1].loc == "layer (model.py:3)"
    m = pm.load(saved)
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(m.predict({"x": x})["y"], x + prog.weights["layer.weight"])
    assert pm.load(saved, function="other").predict({"x": x})["y"].shape == (3, 4)


def test_weights_are_aligned_and_memory_mapped(saved):
    prog, _ = package.read(saved)
    raw = saved.read_bytes()
    _, _, _, hlen = _PREFIX.unpack_from(raw, 0)
    table = json.loads(raw[_PREFIX.size:_PREFIX.size + hlen])["weights"]
    for name, entry in table.items():
        assert entry["offset"] % ALIGN == 0
        w = prog.weights[name]
        assert not w.flags.owndata and not w.flags.writeable  # a view of the mapped file
        assert w.ctypes.data % ALIGN == 0


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, saved):
    before = saved.read_bytes()
    bad = tiny_program()
    bad.weights["layer.weight"] = np.zeros(3, dtype=np.complex64)  # unsupported dtype: fails mid-write
    with pytest.raises(TypeError):
        package.write(saved, bad, {})
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pocket"]


def test_unknown_function_is_a_clear_error(saved):
    with pytest.raises(pm.ConfigError, match="no function 'nope'"):
        pm.load(saved, function="nope")


def test_missing_file(tmp_path):
    with pytest.raises(pm.PackageError, match="cannot open"):
        pm.load(tmp_path / "absent.pocket")


@pytest.mark.parametrize("keep", [0, 5, 20, 100, -1, -64])
def test_truncated_file(saved, keep):
    raw = saved.read_bytes()
    saved.write_bytes(raw[:keep] if keep >= 0 else raw[:len(raw) + keep])
    with pytest.raises(pm.PackageError):
        pm.load(saved)


def test_not_a_package(tmp_path):
    p = tmp_path / "x.pocket"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(pm.PackageError, match="not a pocketml package"):
        pm.load(p)


def test_unknown_format_version(saved):
    raw = bytearray(saved.read_bytes())
    struct.pack_into("<I", raw, 8, 99)
    saved.write_bytes(bytes(raw))
    with pytest.raises(pm.PackageError, match="unknown package format version 99.*newer pocketml"):
        pm.load(saved)


def test_corrupt_header_byte(saved):
    raw = bytearray(saved.read_bytes())
    raw[_PREFIX.size + 10] ^= 0x20
    saved.write_bytes(bytes(raw))
    with pytest.raises(pm.PackageError, match="header is corrupt"):
        pm.load(saved)


def test_corrupt_weight_byte(saved):
    raw = bytearray(saved.read_bytes())
    raw[-128 + 5] ^= 0x01  # a byte of layer.weight, the first of the two 64-byte-aligned weights
    saved.write_bytes(bytes(raw))
    with pytest.raises(pm.PackageError, match="corrupt"):
        pm.load(saved)


def _rewrite_header(path, edit):
    raw = path.read_bytes()
    _, version, _, hlen = _PREFIX.unpack_from(raw, 0)
    header = json.loads(raw[_PREFIX.size:_PREFIX.size + hlen])
    edit(header)
    new = json.dumps(header).encode()
    data_start_old = (_PREFIX.size + hlen + ALIGN - 1) // ALIGN * ALIGN
    data_start_new = (_PREFIX.size + len(new) + ALIGN - 1) // ALIGN * ALIGN
    out = _PREFIX.pack(b"POCKETML", version, zlib.crc32(new), len(new)) + new
    out += b"\0" * (data_start_new - len(out)) + raw[data_start_old:]
    path.write_bytes(out)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["weights"]["layer.weight"].update(offset=10**9), "outside the data section"),
    (lambda h: h["weights"]["layer.weight"].update(offset=3), "malformed"),
    (lambda h: h["weights"]["layer.weight"].update(shape=[4, 4]), "do not hold"),
    (lambda h: h["weights"]["layer.weight"].update(shape=[-3, -4]), "malformed"),
    (lambda h: h["weights"]["layer.weight"].update(dtype="complex128"), "malformed"),
    (lambda h: h["weights"].pop("layer.weight"), "weight 'layer.weight' is not in the program"),
    (lambda h: h.pop("weights"), "lacks a weights table"),
    (lambda h: h["program"]["functions"][0]["ops"][1].update(type="frobnicate"), "unknown op 'frobnicate'"),
    (lambda h: h["program"]["functions"][0]["ops"][1].update(inputs=["x", "nowhere"]), "not defined"),
    (lambda h: h["program"]["functions"][0]["ops"][1]["outputs"][0].update(shape=[5]), "inferred"),
    (lambda h: h["program"]["functions"][0].pop("ops"), "malformed program"),
    (lambda h: h["program"].update(functions="zzz"), "malformed program"),
    (lambda h: h.update(metadata=[1]), "metadata"),
])
def test_inconsistent_header_is_rejected(saved, edit, match):
    _rewrite_header(saved, edit)
    with pytest.raises(pm.PackageError, match=match):
        pm.load(saved)


def test_random_corruption_never_escapes_as_a_raw_exception(saved):
    rng = np.random.default_rng(0)
    raw = saved.read_bytes()
    for _ in range(300):
        b = bytearray(raw)
        for i in rng.integers(0, len(b), size=rng.integers(1, 4)):
            b[i] = rng.integers(0, 256)
        saved.write_bytes(bytes(b))
        try:
            pm.load(saved)
        except pm.PackageError:
            pass


def test_saved_package_has_ordinary_permissions(saved):
    import os
    mask = os.umask(0)
    os.umask(mask)
    assert saved.stat().st_mode & 0o777 == 0o666 & ~mask
