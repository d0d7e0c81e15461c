"""Post-training weight compression: palettization, linear quantization, pruning, joint modes.

    m = pm.compress(model, pm.Palettize(nbits=4, granularity="per_grouped_channel", group_size=16))
    print(pm.format_report(pm.compression_report(m)))

Compressed weights are ops over packed constants (lut_to_dense, dequantize, sparse_to_dense)
that the runtime executes where the weight is used. The stored formats and their decoding are
`pocketml.formats`'; here: `kmeans`, `palettize`, `quantize`, `prune` (the encoders), `config`,
`apply` (the pass), `api`.
"""
from ..errors import CompressionWarning
from .api import compress, compression_report, decompress, format_report
from .config import OptimizationConfig, Palettize, Prune, Quantize

__all__ = ["CompressionWarning", "OptimizationConfig", "Palettize", "Prune", "Quantize", "compress",
           "compression_report", "decompress", "format_report"]
