"""The former home of every compression formula, now only re-exports for code that still imports
it (tests/native/test_kmeans.py). New code imports from where things live: `pocketml.formats`
(bits, lut, quant, sparse: the stored formats and their decoding) and `compress.kmeans`,
`compress.palettize`, `compress.quantize`, `compress.prune` (the encoders).
"""
from __future__ import annotations

import sys
import types

from ..formats.args import check_axis as _axis
from ..formats.args import check_finite as _finite
from ..formats.args import check_int as _int
from ..formats.args import check_nbits as _nbits
from ..formats.args import real_array as _float_weight
from ..formats.bits import pack_bits, packed_size, unpack_bits
from ..formats.lut import depalettize
from ..formats.quant import QUANT_DTYPES, dequantize, pack_quantized, storage_dtype, unpack_quantized
from ..formats.sparse import Sparse, densify, sparsify
from . import kmeans as _kmeans
from .kmeans import (MAX_EXACT, _kmeans_1d_many, _kmeans_1d_many_native, _kmeans_1d_many_reference,
                     _kmeans_nd, kmeans_1d)
from .palettize import PALETTIZE_GRANULARITIES, PALETTIZE_MODES, Palettized, palettize
from .prune import prune_magnitude, prune_nm, prune_threshold
from .quantize import QUANT_GRANULARITIES, Quantized, quant_range, quantize

__all__ = ["MAX_EXACT", "PALETTIZE_GRANULARITIES", "PALETTIZE_MODES", "Palettized", "QUANT_DTYPES",
           "QUANT_GRANULARITIES", "Quantized", "Sparse", "_axis", "_finite", "_float_weight", "_int",
           "_kmeans_1d_many", "_kmeans_1d_many_native", "_kmeans_1d_many_reference", "_kmeans_nd",
           "_nbits", "densify", "depalettize", "dequantize", "kmeans_1d", "pack_bits",
           "pack_quantized", "packed_size", "palettize", "prune_magnitude", "prune_nm",
           "prune_threshold", "quant_range", "quantize", "sparsify", "storage_dtype", "unpack_bits",
           "unpack_quantized"]

class _Numerics(types.ModuleType):
    """`numerics._native` reads and sets `compress.kmeans._native`, the one the k-means dispatch
    consults, so patching it here (`m.setattr(numerics, "_native", None)`) still selects the
    NumPy reference."""

    @property
    def _native(self):
        return _kmeans._native

    @_native.setter
    def _native(self, value):
        _kmeans._native = value


sys.modules[__name__].__class__ = _Numerics
