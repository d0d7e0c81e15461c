"""The packed weight formats of a package, defined once: decoding and the pure-format encoding.

One module per format, each a plain NumPy codec that knows nothing of the IR or the compressor:
`bits` (sub-byte values packed LSB-first into uint8), `lut` (palettized weights: look-up tables
and their indices), `quant` (linearly quantized weights: int8/uint8/int4/uint4 data, per-block
scales and zero points) and `sparse` (a bit mask and the kept values). The compressed-weight ops
of the IR (`ir/ops/compressed.py`: `lut_to_dense`, `dequantize`, `sparse_to_dense`) use these as
their references, and the compressor (`compress/`) encodes through them, so what a package holds
is defined here and in docs/FORMAT.md. Choosing the encoding (k-means, ranges, pruning) is the
compressor's business, not these modules'.
"""
from .bits import pack_bits, packed_size, unpack_bits
from .lut import depalettize, groups_fit, index_shape
from .quant import QUANT_DTYPES, dequantize, pack_quantized, storage_dtype, unpack_quantized
from .sparse import Sparse, densify, sparsify

__all__ = ["QUANT_DTYPES", "Sparse", "densify", "depalettize", "dequantize", "groups_fit",
           "index_shape", "pack_bits", "pack_quantized", "packed_size", "sparsify", "storage_dtype",
           "unpack_bits", "unpack_quantized"]
