"""`pocketml compress`: its flags, the config they make, and the mixed-precision recipe printout."""
from __future__ import annotations

from ..errors import ConfigError
from ..inspect import printable


def add_parser(sub, common, positive_int, func) -> None:
    p = sub.add_parser("compress", parents=[common], help="compress a package's weights",
                       description="Compress the weights of linear/conv/embedding/matmul ops. Flags "
                                   "combine into a joint mode (prune, then palettize, then quantize).")
    p.add_argument("model", metavar="IN.pocket")
    p.add_argument("output", metavar="OUT.pocket")
    p.add_argument("--config", metavar="CFG.yaml", help="an OptimizationConfig in YAML")
    p.add_argument("--palettize", type=int, metavar="NBITS", help="palettize to 2**NBITS values")
    p.add_argument("--mode", default="kmeans", choices=("kmeans", "uniform", "unique"))
    p.add_argument("--granularity", default="per_tensor", choices=("per_tensor", "per_grouped_channel"))
    p.add_argument("--group-size", type=positive_int, default=16)
    p.add_argument("--cluster-dim", type=positive_int, default=1)
    p.add_argument("--quantize", choices=("int8", "uint8", "int4", "uint4", "float16"),
                   help="linear quantization (float16: weights stored as float16)")
    p.add_argument("--quant-granularity", default="per_channel", choices=("per_tensor", "per_channel"))
    p.add_argument("--block-size", type=positive_int, help="quantize per block of this many inputs")
    p.add_argument("--affine", action="store_true", help="affine (with zero point) instead of symmetric")
    p.add_argument("--algorithm", default="search", choices=("search", "minmax", "gptq"),
                   help="search: each block's scale (and offset) chosen for least error (default); "
                        "minmax: the block's extremes at the range's ends; gptq: needs --calibration")
    p.add_argument("--awq", action="store_true",
                   help="quantize: activation-aware scaling of each layer input's columns (needs --calibration)")
    p.add_argument("--activations", choices=("int8",),
                   help="with --quantize: each layer's input quantized to 8 bits per tensor too (W8A8; "
                        "needs --calibration)")
    p.add_argument("--gptq", action="store_true", help="palettize: indices by GPTQ (needs --calibration)")
    p.add_argument("--sparsegpt", action="store_true", help="prune: masks and kept weights by SparseGPT "
                                                            "(needs --calibration)")
    p.add_argument("--target-size", metavar="SIZE",
                   help="mixed precision: each weight's mode chosen (int8 down to 3-bit LUTs) so the package "
                        "fits SIZE (e.g. 60MB) with the least loss on --calibration")
    p.add_argument("--recipe", metavar="CFG.yaml", help="with --target-size: write the chosen config here")
    p.add_argument("--calibration", metavar="DATA", nargs="+",
                   help="representative inputs: DATA.txt, text (for a package with a tokenizer); DATA.npz, arrays "
                        "keyed by input name, one sample per index of a new first axis; or one or more .wav "
                        "files, speech (for a speech-recognition package: both its functions calibrated while it "
                        "transcribes them). Weights are then compressed for the error their layer's output sees")
    p.add_argument("--sensitivity", metavar="FISHER.npz",
                   help="per-element weights for k-means and the searched scales, keyed by weight name, each "
                        "of its weight's shape: np.savez(path, **pocketml.training.fisher(module, samples))")
    p.add_argument("--kv-cache", choices=("int8",),
                   help="store a stateful LLM's KV cache as int8 rows with a scale each (a quarter of its memory)")
    p.add_argument("--prune", type=float, metavar="SPARSITY", help="magnitude-prune to this sparsity")
    p.add_argument("--prune-block-size", type=positive_int, default=1)
    p.add_argument("--prune-nm", metavar="N:M", help="N zeros in every M along the input axis (2:4)")
    p.add_argument("--min-weight-size", type=int, default=2048,
                   help="leave weights with fewer elements dense (default 2048)")
    p.add_argument("--strict", action="store_true",
                   help="a weight the groups/blocks/n:m pattern do not tile is an error (default: it "
                        "falls back to the nearest mode that fits, noted in the report)")
    p.add_argument("--quiet", action="store_true", help="print only the size line")
    p.set_defaults(func=func)


def config_from(args, required: bool = True):
    """--config FILE, or the flags in joint order: prune, then palettize, then quantize (None
    where none is given and not `required`: --kv-cache alone)."""
    from ..compress import OptimizationConfig, Palettize, Prune, Quantize
    specs = []
    if args.prune is not None:
        specs.append(Prune(sparsity=args.prune, block_size=args.prune_block_size, sparsegpt=args.sparsegpt))
    if args.prune_nm is not None:
        try:
            n, m = (int(x) for x in args.prune_nm.split(":"))
        except ValueError:
            raise ConfigError(f"--prune-nm takes N:M, e.g. 2:4; got {args.prune_nm!r}") from None
        specs.append(Prune(n_m=(n, m), sparsegpt=args.sparsegpt))
    if args.palettize is not None:
        specs.append(Palettize(nbits=args.palettize, mode=args.mode, granularity=args.granularity,
                               group_size=args.group_size, cluster_dim=args.cluster_dim, gptq=args.gptq))
    if args.quantize is not None:
        specs.append(Quantize(dtype=args.quantize, symmetric=not args.affine,
                              granularity="per_block" if args.block_size else args.quant_granularity,
                              block_size=args.block_size or 32, algorithm=args.algorithm,
                              activations=args.activations, awq=args.awq))
    elif args.activations is not None:
        raise ConfigError("--activations int8 goes with --quantize (e.g. --quantize int8 --activations int8)")
    elif args.awq:
        raise ConfigError("--awq goes with --quantize (e.g. --quantize int4 --block-size 32 --awq)")
    if args.config is not None:
        if specs:
            raise ConfigError("give either --config or compression flags, not both")
        return OptimizationConfig.from_yaml(args.config)
    if not specs and not required:
        return None
    if not specs:
        raise ConfigError("nothing to do: give --config FILE.yaml or a flag such as --palettize 4, "
                          "--quantize int8, --prune 0.5, --prune-nm 2:4 or --kv-cache int8")
    return OptimizationConfig(global_config=specs, min_weight_size=args.min_weight_size, strict=args.strict)


def print_recipe(recipe: dict, path: str | None) -> None:
    """The mixed-precision plan: its size/loss curve, and the recipe as YAML (to `path`)."""
    import yaml
    curve = recipe["curve"]
    print(f"mixed precision: {len(curve) - 1} steps from {curve[0][0] / 2**20:.1f} MiB (loss {curve[0][1]:.4g}) "
          f"to {curve[-1][0] / 2**20:.1f} MiB (loss {curve[-1][1]:.4g}); target {recipe['target_size'] / 2**20:.1f} MiB")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(recipe["config"], f, sort_keys=False)
        print(f"recipe: {printable(path)} (reuse with --config)")
