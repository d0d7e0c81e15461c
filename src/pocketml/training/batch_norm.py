"""Batch norms folded into the convolutions before them, in the torch module itself.

Training-time compression trains the weights the package will store. A convolution followed by
a batch norm is stored folded (`passes.fold_conv`), so it is folded first and trained folded, the
batch norm's statistics frozen (as fine-tuning with small batches keeps them anyway); the folded
module then converts to weights named after its own parameters."""
from __future__ import annotations

from collections import Counter


def fold_batch_norms(module, example_inputs) -> int:
    """Fold each `BatchNorm1d/2d` that alone reads a `Conv1d/2d` module's output into that
    convolution (weight and bias; eval-mode statistics), the batch norm replaced by `nn.Identity`;
    returns how many. The pairs come from `torch.export`'s graph of the module on
    `example_inputs`; a module called more than once is left as it is."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    graph = torch.export.export(module.eval(), tuple(example_inputs)).graph
    modules = dict(module.named_modules())

    def owner(node):  # the innermost module that made the node
        stack = node.meta.get("nn_module_stack") or {}
        return list(stack.values())[-1][0] if stack else None

    calls = Counter(owner(n) for n in graph.nodes
                    if n.op == "call_function" and ("conv" in str(n.target) or "batch_norm" in str(n.target)))
    pairs = []
    for node in graph.nodes:
        if node.op != "call_function" or "batch_norm" not in str(node.target) or not node.args:
            continue
        src = node.args[0]
        conv, bn = owner(src), owner(node)
        if (getattr(src, "op", None) == "call_function" and "conv" in str(src.target) and len(src.users) == 1
                and isinstance(modules.get(conv), (nn.Conv1d, nn.Conv2d))
                and isinstance(modules.get(bn), (nn.BatchNorm1d, nn.BatchNorm2d))
                and calls[conv] == 1 and calls[bn] == 1):
            pairs.append((conv, bn))
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        with torch.no_grad():
            fused = fuse_conv_bn_eval(conv, bn)
        _set(module, conv_name, fused)
        _set(module, bn_name, nn.Identity())
    return len(pairs)


def _set(root, dotted: str, new) -> None:
    parent, _, name = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)
