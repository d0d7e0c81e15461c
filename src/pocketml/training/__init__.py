"""Training-time compression of a PyTorch module (needs torch): quantization-aware training with
fake quantization, differentiable k-means palettization (DKM) and gradual pruning, for exactly the
specs and packed formats `pm.compress` uses.

    compressor = pm.training.prepare(module, pm.Palettize(4), example_inputs)
    ... fine-tune `module` with any loop, calling compressor.step() after each optimizer step ...
    model = compressor.export(example_inputs)  # a pm.Model whose weights are the trained ones

`fisher(module, samples)`: the Fisher diagonal of each weight, for
`pm.compress(..., sensitivity=)` (k-means and searched scales weighted by what the loss needs).
"""
from .batch_norm import fold_batch_norms
from .compressor import Compressor, prepare
from .fisher import fisher, language_model_loss

__all__ = ["Compressor", "fisher", "fold_batch_norms", "language_model_loss", "prepare"]
