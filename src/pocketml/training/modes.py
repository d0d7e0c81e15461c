"""The weight parametrizations of training-time compression (torch.nn.utils.parametrize): each
maps the trained float weight to the weight the forward pass uses, mirroring one pocketml spec.

- `SoftPalettized` (Palettize): differentiable k-means (DKM, Cho et al. 2022). Each weight's
  distance to its table's 2**nbits centres gives soft assignments softmax(-d^2 / tau); the forward
  uses the assignment-weighted centres, and the gradient trains both the weights (through the
  assignments) and the centres (parameters, starting from the data-free k-means). tau is relative
  to the table's spacing: at `temperature` 0.003 a weight at a centre weighs the next one e^-333,
  only weights within ~0.5 % of a spacing of a midpoint are mixed (the assignments change
  there; the centres learn from every weight). Evaluation, and the package,
  use the nearest centre. (Measured on EfficientNet-Lite0: soft means for the centres instead of
  gradients, or a softer 0.1, leave a gap between the soft loss and the hard one that training
  does not close.)
- `FakeQuantized` (Quantize): the min/max grid of the spec's blocks, rounded in the forward pass
  and passed straight through in the backward (STE).
- `Pruned` (Prune): a magnitude mask recomputed at each `Compressor.step()` at the schedule's
  sparsity (n:m patterns from the start) from the latent weights' magnitudes; a masked weight
  gets no gradient while masked.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..compress.config import Palettize, Prune, Quantize
from ..compress.palettize import palettize
from ..compress.prune import prune_magnitude, prune_nm
from ..compress.quantize import quant_range


def _grouped(w: torch.Tensor, axis: int, groups: int) -> torch.Tensor:
    """w as [groups, elements]: groups of consecutive slices along `axis`."""
    return w.movedim(axis, 0).reshape(groups, -1)


def _ungrouped(g: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    shape = (like.shape[axis],) + tuple(s for i, s in enumerate(like.shape) if i != axis)
    return g.reshape(shape).movedim(0, axis)


class SoftPalettized(nn.Module):
    def __init__(self, weight: torch.Tensor, spec: Palettize, axis: int, temperature: float = 0.003):
        super().__init__()
        self.axis, self.temperature = axis, float(temperature)
        w = weight.detach().cpu().numpy().astype(np.float32)
        gs = spec.group_size if spec.granularity == "per_grouped_channel" else w.shape[axis]
        self.groups = w.shape[axis] // gs
        # the package's own k-means as the start: training begins where data-free palettization ends
        lut = palettize(w, spec.nbits, granularity=spec.granularity, group_size=gs, axis=axis).lut
        self.centers = nn.Parameter(torch.from_numpy(lut.reshape(self.groups, -1).copy()))

    def _distances(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :, None] - self.centers[:, None, :]) ** 2

    def nearest(self, w: torch.Tensor) -> torch.Tensor:
        x = _grouped(w, self.axis, self.groups)
        idx = self._distances(x).argmin(-1)
        return _ungrouped(torch.gather(self.centers, 1, idx), w, self.axis)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.nearest(w)
        x = _grouped(w, self.axis, self.groups)
        c = self.centers
        with torch.no_grad():
            spacing = (c.amax(1) - c.amin(1)).clamp_min(1e-12) / max(c.shape[1] - 1, 1)
            tau = (self.temperature * spacing ** 2)[:, None, None]
        a = torch.softmax(-self._distances(x) / tau, dim=-1)
        y = (a * c[:, None, :]).sum(-1)
        return _ungrouped(y, w, self.axis)


class FakeQuantized(nn.Module):
    def __init__(self, weight: torch.Tensor, spec: Quantize, axis: int, in_axis: int):
        super().__init__()
        self.spec, self.axis, self.in_axis = spec, axis, in_axis
        self.qmin, self.qmax = quant_range(spec.dtype, spec.symmetric)

    def _blocks(self, w: torch.Tensor) -> torch.Tensor:
        """w as [channels, blocks, block] (per_tensor: one block)."""
        if self.spec.granularity == "per_tensor":
            return w.reshape(1, 1, -1)
        v = w.movedim(self.axis, 0)
        if self.spec.granularity == "per_channel":
            return v.reshape(v.shape[0], 1, -1)
        ia = self.in_axis if self.in_axis > self.axis else self.in_axis + 1  # its place after movedim
        v = v.movedim(ia, 1)  # [C, K, rest]
        C, K = v.shape[:2]
        return v.reshape(C, K // self.spec.block_size, self.spec.block_size, -1).reshape(
            C, K // self.spec.block_size, -1)

    def _unblocks(self, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.spec.granularity == "per_tensor":
            return b.reshape(w.shape)
        v = w.movedim(self.axis, 0)
        if self.spec.granularity == "per_channel":
            return b.reshape(v.shape).movedim(0, self.axis)
        ia = self.in_axis if self.in_axis > self.axis else self.in_axis + 1
        u = v.movedim(ia, 1)
        return b.reshape(u.shape).movedim(1, ia).movedim(0, self.axis)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        b = self._blocks(w)
        with torch.no_grad():
            if self.spec.symmetric:
                half = (self.qmax - self.qmin) // 2
                s = b.abs().amax(-1, keepdim=True) / half
                zp = torch.full_like(s, float((self.qmin + self.qmax + 1) // 2))
            else:
                lo = b.amin(-1, keepdim=True).clamp_max(0)
                hi = b.amax(-1, keepdim=True).clamp_min(0)
                s = (hi - lo) / (self.qmax - self.qmin)
                zp = torch.round(self.qmin - lo / torch.where(s > 0, s, torch.ones_like(s))).clamp(self.qmin, self.qmax)
            s = torch.where(s > 0, s, torch.ones_like(s))
        q = torch.clamp(torch.round(b / s) + zp, self.qmin, self.qmax)
        deq = (q - zp) * s
        return self._unblocks(b + (deq - b).detach(), w)  # rounded forward, identity backward


class Pruned(nn.Module):
    def __init__(self, weight: torch.Tensor, spec: Prune, in_axis: int):
        super().__init__()
        self.spec, self.in_axis = spec, in_axis
        self.register_buffer("mask", torch.ones_like(weight, dtype=torch.bool))
        self.update(weight, 0.0 if spec.n_m is None else 1.0)

    def update(self, weight: torch.Tensor, progress: float) -> None:
        """The mask at `progress` (0..1) of the schedule: n:m patterns whole at once, unstructured
        sparsity ramped as s (1 - (1 - progress)^3) (Zhu and Gupta's gradual pruning)."""
        w = weight.detach().cpu().numpy()
        if self.spec.n_m is not None:
            keep = prune_nm(w, self.spec.n_m[0], self.spec.n_m[1], axis=self.in_axis)
        else:
            target = self.spec.sparsity * (1.0 - (1.0 - min(max(progress, 0.0), 1.0)) ** 3)
            keep = prune_magnitude(w, target, block_size=self.spec.block_size, axis=self.in_axis)
        self.mask.copy_(torch.from_numpy(np.asarray(keep, dtype=bool)))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask
