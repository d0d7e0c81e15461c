"""Training-time compression of a PyTorch module (needs torch): quantization-aware training with
fake quantization, differentiable k-means palettization (DKM) and gradual pruning, for exactly the
specs and packed formats `pm.compress` uses.

    compressor = pm.training.prepare(module, pm.Palettize(4), example_inputs)
    ... fine-tune `module` with any loop, calling compressor.step() after each optimizer step ...
    model = compressor.export(example_inputs)  # a pm.Model whose weights are the trained ones
"""
from .batch_norm import fold_batch_norms
from .compressor import Compressor, prepare

__all__ = ["Compressor", "fold_batch_norms", "prepare"]
