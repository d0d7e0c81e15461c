"""Hostile packages: hundreds of deterministic mutations of a real package (header fields, header
bytes, truncations, weight bytes). Loading and running each must either work or raise a pocketml
Error: never another exception, never a hang."""
import json
import os
import warnings
import zlib

import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.package.format import _PREFIX, ALIGN

HOSTILE = [None, True, False, -1, 0, 7, 2**62, -2**63, 2**63 - 1, 1.5, -0.0, 1e308, "", "T", "x",
           "Max()", "T//0", "T%(T-T)", "True", "1.5", "(" * 100 + "T" + ")" * 100, "T*" * 200 + "T",
           "float32", "a" * 10_000, [], [1, 2], ["T"], [[[[[]]]]], {}, {"a": 1}, {"shape": [1]}]


class Net(torch.nn.Module):
    """A state, a symbolic (bounded) dimension used in attributes, and a multi-op graph."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 32)
        self.out = torch.nn.Linear(32, 8)
        self.register_buffer("acc", torch.zeros(32))

    def forward(self, x):
        t = x.shape[1]
        h = torch.relu(self.lin(x))
        self.acc.copy_(self.acc + h.sum((0, 1)))
        pos = torch.arange(t, dtype=torch.float32).reshape(1, t, 1)
        y = self.out(h + self.acc) + pos
        return y.reshape(1, -1)[:, :t * 4]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    torch.manual_seed(0)
    T = torch.export.Dim("T", min=1, max=8)
    model = pm.convert(Net(), (torch.randn(1, 3, 16),), input_names=["x"], dynamic_shapes=({1: T},))
    with warnings.catch_warnings():  # 2 bits is lossy: irrelevant here
        warnings.simplefilter("ignore")
        model = pm.compress(model, pm.OptimizationConfig(op_name_configs={"lin.weight": pm.Palettize(nbits=2)}))
    assert "lut_to_dense" in [op.type for op in model.program.main.ops]
    path = tmp_path_factory.mktemp("mutations") / "net.pocket"
    model.save(path)
    return path.read_bytes()


def _split(raw: bytes):
    _, version, _, hlen = _PREFIX.unpack_from(raw, 0)
    data_start = (_PREFIX.size + hlen + ALIGN - 1) // ALIGN * ALIGN
    return version, raw[_PREFIX.size:_PREFIX.size + hlen], raw[data_start:]


def _assemble(version: int, header: bytes, data: bytes) -> bytes:
    out = _PREFIX.pack(b"POCKETML", version, zlib.crc32(header), len(header)) + header
    return out + b"\0" * (-len(out) % ALIGN) + data


def _paths(obj, prefix=()):
    """Every (path) to a value in the JSON, depth first."""
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


def _set(obj, path, value):
    obj = json.loads(json.dumps(obj))
    if not path:
        return value
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if value is _REMOVE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return obj


_REMOVE = object()


def _run(path, verify=True) -> str:
    """'ok', or the pocketml Error's class name; anything else propagates."""
    try:
        model = pm.load(path, verify=verify)
        state = model.make_state() if model.states else None
        inputs = {}
        for name, t in model.inputs.items():
            shape = [3 if isinstance(d, str) else d for d in t.shape]
            if np.prod(shape, dtype=float) > 4096:
                shape = [1, 3, 16]
            inputs[name] = np.ones(shape, t.dtype.np)
        model.predict(inputs, state=state)
        return "ok"
    except pm.Error as e:
        return type(e).__name__


def _check_all(tmp_path, cases, verify=True):
    failures, outcomes = [], {}
    for what, raw in cases:
        path = tmp_path / "m.pocket"
        tmp = tmp_path / "m.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, path)  # never modify a file a previous model may still map
        try:
            outcome = _run(path, verify)
        except Exception as e:  # noqa: BLE001 -- the point of the test
            failures.append(f"{what}: {type(e).__name__}: {str(e)[:200]}")
            continue
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert not failures, "\n".join(failures[:30]) + f"\n({len(failures)} in all)"
    return outcomes


def test_header_field_mutations(package, tmp_path):
    rng = np.random.default_rng(0)
    version, header, data = _split(package)
    doc = json.loads(header)
    cases = []
    for path in _paths(doc):
        values = [HOSTILE[i] for i in rng.choice(len(HOSTILE), size=4, replace=False)]
        if path and isinstance(path[-1], str):
            values.append(_REMOVE)
        for v in values:
            new = json.dumps(_set(doc, path, v)).encode()
            cases.append((f"{'.'.join(map(str, path))} = {str(v)[:40]}", _assemble(version, new, data)))
    cases.append(("deep nesting", _assemble(version, header[:-1] + b',"m":' + b"[" * 5000 + b"]" * 5000 + b"}", data)))
    cases.append(("huge integer", _assemble(version, header[:-1] + b',"m":' + b"9" * 5000 + b"}", data)))
    cases.append(("NaN", _assemble(version, header[:-1] + b',"m":NaN}', data)))
    assert len(cases) > 500
    outcomes = _check_all(tmp_path, cases)
    assert outcomes.get("ok", 0) > 0 and outcomes.get("PackageError", 0) > len(cases) // 2


def test_header_byte_flips_past_the_checksum(package, tmp_path):
    rng = np.random.default_rng(1)
    version, header, data = _split(package)
    cases = []
    for i in range(300):
        h = bytearray(header)
        for j in rng.integers(0, len(h), size=rng.integers(1, 4)):
            h[j] = rng.integers(0, 256) if i % 2 else rng.choice(list(b'{}[]",:0123456789-eT'))
        cases.append((f"header flip #{i}", _assemble(version, bytes(h), data)))
    _check_all(tmp_path, cases)


def test_truncations(package, tmp_path):
    sizes = sorted(set(range(0, 40)) | set(range(40, len(package), 97)) | {len(package) - 1})
    outcomes = _check_all(tmp_path, [(f"first {n} bytes", package[:n]) for n in sizes])
    assert outcomes == {"PackageError": len(sizes)}


def test_weight_byte_flips(package, tmp_path):
    rng = np.random.default_rng(2)
    version, header, data = _split(package)
    start = len(package) - len(data)
    table = json.loads(header)["weights"]
    cases = []
    for name, e in sorted(table.items()):
        for k in range(10):
            raw = bytearray(package)
            raw[start + e["offset"] + int(rng.integers(0, e["nbytes"]))] ^= 1 << int(rng.integers(0, 8))
            cases.append((f"{name} flip #{k}", bytes(raw)))
    assert _check_all(tmp_path, cases, verify=True) == {"PackageError": len(cases)}
    _check_all(tmp_path, cases, verify=False)  # wrong numbers, maybe, but no crash
