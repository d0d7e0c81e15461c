"""`fisher`: the diagonal of a PyTorch module's empirical Fisher information, per parameter, as
`pm.compress(..., sensitivity=)` takes it.

Where the activations' energy (the calibration's diag X^T X) says how much a weight's inputs
carry, the Fisher diagonal (the squared gradient of a loss, summed over samples) says how much the
loss moves with each element: k-means and the searched scales then keep what the task needs
(coremltools' SKMPalettizer weighs its k-means so). Each sample is one backward pass; the keys
are the module's parameter names, which are the converted package's weight names (convert the
module with its batch norms folded, `fold_batch_norms`, so the folded weights are the ones
measured)."""
from __future__ import annotations

import sys

import numpy as np

from ..errors import ConfigError


def language_model_loss(module, sample):
    """Next-token cross-entropy of a causal language model on its own input: `sample` is the
    input_ids tensor (1, T) or a tuple/dict holding it first; the module returns logits (1, T, V)
    (or a tuple whose first item they are)."""
    import torch

    if isinstance(sample, dict):
        ids, out = sample["input_ids"], module(**sample)
    elif isinstance(sample, (tuple, list)):
        ids, out = sample[0], module(*sample)
    else:
        ids, out = sample, module(sample)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    if logits.dim() != 3 or ids.dim() != 2 or logits.shape[:2] != ids.shape:
        raise ConfigError(f"language_model_loss takes input_ids (B, T) and logits (B, T, V); got {tuple(ids.shape)} "
                          f"and {tuple(logits.shape)}: give fisher() a loss of your own")
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                             ids[:, 1:].reshape(-1))


def fisher(module, data, loss=None, names=None, progress: bool | None = None) -> dict[str, np.ndarray]:
    """Parameter name -> sum over the samples of `data` of the squared gradient of
    `loss(module, sample)` (a scalar tensor; default `language_model_loss`), float32 arrays of the
    parameters' shapes (relative weights: float32 sums keep them, at half the memory of a copy of
    the model in float64). `names`: only these parameters (default: every weight of two or more
    dimensions, what compression takes). The module's parameters keep their values; their
    gradients are cleared."""
    import torch

    loss = loss or language_model_loss
    wanted_names = None if names is None else set(names)
    params = {n: p for n, p in module.named_parameters() if (p.dim() >= 2 if names is None else n in wanted_names)}
    if names is not None:
        missing = sorted(wanted_names - set(params))
        if missing:
            raise ConfigError(f"fisher: the module has no parameters {missing[:5]}")
    if not params:
        raise ConfigError("fisher: no parameters to measure")
    sums = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    wanted = {n: p.requires_grad for n, p in params.items()}
    for p in params.values():
        p.requires_grad_(True)
    items = list(data)
    if not items:
        raise ConfigError("fisher: no samples in data")
    show = sys.stderr.isatty() if progress is None else progress
    iterator = items
    if show:
        from rich.progress import track
        iterator = track(items, description="fisher", transient=True)
    was_training = module.training
    module.eval()
    try:
        for sample in iterator:
            module.zero_grad(set_to_none=True)
            value = loss(module, sample)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ConfigError(f"fisher: loss must return a scalar tensor, got {type(value).__name__}")
            value.backward()
            for n, p in params.items():
                if p.grad is not None:
                    sums[n] += p.grad.detach().float() ** 2
    finally:
        module.zero_grad(set_to_none=True)
        for n, p in params.items():
            p.requires_grad_(wanted[n])
        module.train(was_training)
    return {n: s.numpy() for n, s in sums.items()}
