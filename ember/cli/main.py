"""The ``ember`` command: train, eval, time, export, sample and info.

Example: ember train examples/digits_cnn.toml --epochs 2 --set optimizer.lr=0.01
"""
from __future__ import annotations

import argparse
import sys

from ..errors import EmberError
from .config import ConfigError

__all__ = ["main"]

CONFIG_ERROR_EXIT = 2  # as argparse exits for bad arguments


def _add_config(p: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        p.add_argument("config", help="a run config (TOML), e.g. examples/digits_cnn.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value: section.key=value, or key=value when one section "
                        "has the key (repeatable), e.g. --set epochs=1 --set optimizer.lr=0.01")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ember", description="ember: train, evaluate, time and export models "
                                 "described by TOML config files.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train the model a config describes (resumes from its last checkpoint)")
    _add_config(p)
    p.add_argument("--epochs", type=int, help="same as --set train.epochs=N")
    p.add_argument("--out", help="output folder; same as --set train.out=DIR")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")

    p = sub.add_parser("eval", help="test loss and accuracy of a checkpoint")
    _add_config(p)
    p.add_argument("--checkpoint", required=True, help="a checkpoint of `ember train` or a saved state dict")

    p = sub.add_parser("time", help="per-layer forward and backward times (like `caffe time`)")
    _add_config(p)
    p.add_argument("--iterations", type=int, default=10, help="timed passes (default 10, after 1 warm-up)")
    p.add_argument("--batch-size", type=int, help="default: the config's train.batch_size")

    p = sub.add_parser("export", help="write a checkpoint's model in another format")
    p.add_argument("checkpoint", help="a checkpoint of `ember train` or a saved state dict")
    p.add_argument("--safetensors", metavar="OUT", help="the model weights alone")
    p.add_argument("--onnx", metavar="OUT", help="an ONNX model (needs ember.onnx and --config)")
    p.add_argument("--config", help="the run config, to rebuild the model (for --onnx)")
    _add_config(p, positional=False)

    p = sub.add_parser("sample", help="generate text with a trained language model")
    p.add_argument("checkpoint", help="a checkpoint of `ember train` on a text config")
    p.add_argument("--config", required=True, help="the run config the checkpoint was trained with")
    _add_config(p, positional=False)
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--length", type=int, default=200, help="characters to generate (default 200)")
    p.add_argument("--temperature", type=float, default=0.8, help="< 1: safer text, > 1: wilder (default 0.8)")
    p.add_argument("--top-k", type=int, help="sample only among the k most likely characters")
    p.add_argument("--seed", type=int, default=0)

    sub.add_parser("info", help="version, backends, devices, C compiler and compile cache")

    p = sub.add_parser("run", help="run a Python script in N MPI processes (mpiexec; needs ember[mpi])")
    p.add_argument("-n", type=int, default=2, help="number of processes (default 2)")
    p.add_argument("script", help="the training script, e.g. one using ember.distributed")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    return ap


def _run(args: argparse.Namespace) -> int:
    if args.command == "run":
        import ember.distributed as dist  # lazily: the rest of the command works without MPI
        return dist.launch(args.n, [args.script, *args.args])
    if args.command == "info":
        from .info import info_lines
        print("\n".join(info_lines()))
        return 0
    if args.command == "export":
        return _export(args)

    from .config import load_config
    overrides = list(args.overrides)
    if args.command == "train":
        if args.epochs is not None:
            overrides.append(f"train.epochs={args.epochs}")
        if args.out is not None:
            overrides.append(f"train.out={_toml_string(args.out)}")
    cfg = load_config(args.config, overrides)

    if args.command == "train":
        from .train import train
        return train(cfg, restart=args.restart)
    if args.command == "sample":
        from .sample import sample_text
        print(sample_text(cfg, args.checkpoint, args.prompt, args.length, args.temperature, args.top_k, args.seed))
        return 0

    from .build import build_loss, build_model
    from .data import build_data
    data = build_data(cfg)
    import ember
    ember.manual_seed(cfg.train.seed)
    model = build_model(cfg, data)
    if args.command == "eval":
        from .checkpoint import read_weights
        from .train import evaluate_test
        model.load_state_dict(read_weights(args.checkpoint)[0])
        r = evaluate_test(model, cfg, data)
        print(f"{args.checkpoint}: test loss {r['loss']:.4f}, test accuracy {100 * r['accuracy']:.2f}% "
              f"({len(data.test):,} samples)")
        return 0
    from .timing import format_table, time_model
    n = args.batch_size or cfg.train.batch_size
    x, y = data.train.__getitems__(list(range(min(n, len(data.train)))))
    x, y = x.to(cfg.train.device), y.to(cfg.train.device)
    print(f"{cfg.source}: timing {args.iterations} forward-backward passes at batch size {len(x)} on {cfg.train.device}")
    print(format_table(*time_model(model, build_loss(cfg), x, y, args.iterations), len(x)))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import describe_formats, export
    outputs = {f: getattr(args, f) for f in ("safetensors", "onnx") if getattr(args, f)}
    if not outputs:
        print(f"ember export: name at least one format for {args.checkpoint}:\n{describe_formats()}",
              file=sys.stderr)
        return CONFIG_ERROR_EXIT
    for path in export(args.checkpoint, outputs, args.config, args.overrides):
        print(f"wrote {path}")
    return 0


def _toml_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ember`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as e:
        print(f"ember {args.command}: config error: {e}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except EmberError as e:
        print(f"ember {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside training, or a second Ctrl-C during it
        print(f"ember {args.command}: aborted", file=sys.stderr)
        from .train import INTERRUPTED_EXIT
        return INTERRUPTED_EXIT
