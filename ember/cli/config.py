"""Typed run configuration for `ember train`, `eval`, `time` and `sample`.

Every setting has a default here, in code; a TOML file overrides some of them and `--set key=value`
overrides those. Anything the file gets wrong - an unknown section or key, a wrong type, a value
outside the allowed ones, a missing field, an unknown layer or model argument - is a ConfigError
that names the file, the key and what is allowed.

Example: cfg = load_config("examples/digits_cnn.toml", overrides=["epochs=1"])

A file looks like::

    [model]                      # either a zoo model with arguments ...
    zoo = "lenet5"
    args = { kernel_size = 3 }
    # ... or a list of layers:  [[model.layers]]  type = "Linear"  in_features = 64 ...
    [data]
    name = "digits"
    [optimizer]
    name = "adam"
    lr = 0.001
    [train]
    epochs = 10
"""
from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import EmberError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "Config", "ModelConfig", "DataConfig", "OptimizerConfig", "ScheduleConfig",
           "TrainConfig", "load_config", "parse_config", "check_call_args", "DATASETS", "OPTIMIZERS",
           "SCHEDULES"]

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "text")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "multistep", "exponential", "cosine")


class ConfigError(EmberError, ValueError):
    """A run configuration is invalid; the message names the file, the key and the allowed values."""


def _choices(*values) -> dict:
    return {"choices": values}


@dataclass
class ModelConfig:
    """What to train: exactly one of `zoo` (with `args`) or `layers`."""
    zoo: str = ""  # a model of ember.zoo.MODELS; "" when `layers` is given
    args: dict[str, Any] = field(default_factory=dict)  # its keyword arguments; in_channels,
    #   in_features, input_size, num_classes and vocab_size default to what the data set has
    layers: list[dict[str, Any]] = field(default_factory=list)  # [{type = "Linear", ...}, ...] -> Sequential


@dataclass
class DataConfig:
    name: str = field(default="digits", metadata=_choices(*DATASETS))  # digits is bundled: no network
    root: str = ""  # data set folder; "" = ember's cache (ember.data.datasets.dataset_root)
    path: str = ""  # the text file, for name = "text" (relative paths: to the working directory)
    flatten: bool = False  # images as (N, H*W) vectors instead of (N, C, H, W)
    seq_len: int = 64  # text: characters per training example
    test_fraction: float = 0.1  # text: the last 10% of the file is the test set, as in char-rnn
    train_subset: int = 0  # use only the first N training examples (0 = all): quick runs and tests
    test_subset: int = 0  # the same for the test set


@dataclass
class OptimizerConfig:
    name: str = field(default="adam", metadata=_choices(*OPTIMIZERS))
    lr: float = 1e-3  # Adam's usual default; SGD wants ~0.1 with momentum
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd and rmsprop only
    nesterov: bool = False  # sgd only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam and adamw only


@dataclass
class ScheduleConfig:
    """A learning-rate schedule, stepped once per epoch (ember.optim.lr_scheduler)."""
    name: str = field(default="none", metadata=_choices(*SCHEDULES))
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step, multistep, exponential: the decay factor
    milestones: list[int] = field(default_factory=list)  # multistep: epochs at which to decay
    eta_min: float = 0.0  # cosine: the final lr (the cosine spans all epochs)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    device: str = "cpu"  # "cpu" or "cuda"/"cuda:N" (needs CuPy and a GPU)
    seed: int = 0  # seeds weights, shuffling and dropout: a rerun gives the same numbers
    out: str = ""  # output folder; "" = runs/<config file name without .toml>
    label_smoothing: float = 0.0  # of the cross-entropy loss
    validate: bool = True  # evaluate on held-out training data after each epoch (val_ columns, best.safetensors)
    validation_split: float = 0.1  # the last fraction of the training set, never trained on; the test set is
    #                                only used for the final report, so the best checkpoint is not picked on it
    jit: bool = True  # compile the train step with ember.jit where it can (fit falls back to eager)
    verbose: int = field(default=1, metadata=_choices(0, 1, 2))  # 0 quiet, 1 progress bar, 2 a line per epoch


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    source: str = field(default="<defaults>", metadata={"internal": True})  # the file it came from

    def to_dict(self) -> dict:
        """Every setting, for reports (JSON-able)."""
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)
                if not f.metadata.get("internal")}


SECTIONS: dict[str, type] = {f.name: f.type if isinstance(f.type, type) else globals()[f.type]
                             for f in dataclasses.fields(Config) if not f.metadata.get("internal")}


# ---------------------------------------------------------------- loading

def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a TOML file, apply `--set key=value` overrides and check everything.

    Example: load_config("examples/digits_mlp.toml", ["train.epochs=2", "lr=0.01"])
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e})") from None
    cfg = parse_config(raw, str(path), overrides)
    if not cfg.train.out:
        cfg.train.out = str(Path("runs") / path.stem)
    return cfg


def parse_config(raw: dict, source: str = "<config>", overrides: list[str] = ()) -> Config:
    """Check a parsed TOML dict (plus overrides) against the dataclasses and build a Config."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        _apply_override(raw, item, source)
    cfg = Config(source=source)
    for section, value in raw.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}]; allowed: {', '.join(SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {section} must be a table [{section}], got {_describe(value)}")
        setattr(cfg, section, _build(SECTIONS[section], value, source, section))
    _check_model(cfg.model, source)
    if cfg.data.name == "text" and not cfg.data.path:
        raise ConfigError(f"{source}: [data] path is missing: name = \"text\" needs the path of a text file")
    for key in ("epochs", "batch_size"):
        if getattr(cfg.train, key) < 1:
            raise ConfigError(f"{source}: [train] {key} must be >= 1, got {getattr(cfg.train, key)}")
    if cfg.data.seq_len < 1 or not 0 < cfg.data.test_fraction < 1:
        raise ConfigError(f"{source}: [data] needs seq_len >= 1 and 0 < test_fraction < 1, got "
                          f"seq_len = {cfg.data.seq_len}, test_fraction = {cfg.data.test_fraction}")
    return cfg


def _build(cls: type, table: dict, source: str, section: str):
    """An instance of dataclass `cls` from `table`, every key and type checked."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"{source}: [{section}] unknown key {key!r}; allowed: {', '.join(fields)}")
        where = f"[{section}] {key}"
        if not _matches(value, hints[key]):
            raise ConfigError(f"{source}: {where} must be {_type_name(hints[key])}, got {_describe(value)}")
        choices = fields[key].metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{source}: {where} = {value!r} is not one of the allowed values: "
                              f"{', '.join(map(str, choices))}")
        values[key] = float(value) if hints[key] is float else value
    return cls(**values)


def _check_model(m: ModelConfig, source: str) -> None:
    from .. import zoo
    if bool(m.zoo) == bool(m.layers):
        raise ConfigError(f"{source}: [model] needs exactly one of zoo = \"<name>\" (one of "
                          f"{', '.join(zoo.MODELS)}) or a list of [[model.layers]]"
                          + (", not both" if m.zoo else ""))
    if m.zoo:
        if m.zoo not in zoo.MODELS:
            raise ConfigError(f"{source}: [model] zoo = {m.zoo!r} is not a zoo model; allowed: "
                              f"{', '.join(zoo.MODELS)}")
        check_call_args(zoo.MODELS[m.zoo], m.args, f"{source}: [model] args", f"zoo model {m.zoo}",
                        filled_later=("vocab_size",))
    elif m.args:
        raise ConfigError(f"{source}: [model] args are for a zoo model; with [[model.layers]] put "
                          "each layer's arguments in its own table")
    for i, layer in enumerate(m.layers):
        layer_class(layer, f"{source}: model.layers[{i}]")


def layer_class(layer: dict, where: str) -> type:
    """The nn class a `[[model.layers]]` table names, its arguments checked."""
    from .. import nn
    allowed = _layer_types()
    if "type" not in layer:
        raise ConfigError(f"{where}: missing key 'type' (the layer's class, e.g. \"Linear\"); "
                          f"allowed types: {', '.join(allowed)}")
    name = layer["type"]
    if name not in allowed:
        raise ConfigError(f"{where}: unknown layer type {name!r}; allowed: {', '.join(allowed)}")
    cls = getattr(nn, name)
    check_call_args(cls, {k: v for k, v in layer.items() if k != "type"}, where, f"layer {name}")
    return cls


def _layer_types() -> list[str]:
    """Every layer of ember.nn that a list of layers can hold (not containers, not Module itself)."""
    from .. import nn
    # Containers hold other layers; recurrent layers and MultiheadAttention return tuples, which
    # the next layer of a plain list cannot take; losses are not layers of a model.
    skip = {"Module", "Sequential", "ModuleList", "ModuleDict", "RNNBase", "RNN", "LSTM", "GRU",
            "MultiheadAttention"}
    return sorted(n for n in dir(nn) if n[0].isupper() and n not in skip and not n.endswith("Loss")
                  and isinstance(getattr(nn, n), type) and issubclass(getattr(nn, n), nn.Module))


def check_call_args(fn, args: dict, where: str, what: str, filled_later: tuple[str, ...] = ()) -> None:
    """Check keyword `args` for constructor `fn`: known names, required ones given, types by annotation."""
    params = {k: p for k, p in inspect.signature(fn).parameters.items()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k not in ("device", "dtype")}
    for key in args:
        if key not in params:
            raise ConfigError(f"{where}: {what} has no argument {key!r}; allowed: {', '.join(params)}")
    missing = [k for k, p in params.items()
               if p.default is p.empty and k not in args and k not in filled_later]
    if missing:
        raise ConfigError(f"{where}: {what} is missing required argument(s) {', '.join(missing)} "
                          f"(its arguments: {', '.join(params)})")
    try:
        hints = typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn)
    except Exception:  # an annotation that cannot be resolved: the constructor checks its values
        hints = {}
    for key, value in args.items():
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(f"{where}: {what} argument {key!r} must be {_type_name(hints[key])}, "
                              f"got {_describe(value)}")


# ---------------------------------------------------------------- --set key=value

def _apply_override(raw: dict, item: str, source: str) -> None:
    """Apply one `--set key=value`: key is section.key (model.args.x too) or a key unique to one section."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{source}: --set {item!r}: expected key=value, e.g. --set train.epochs=1")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word such as adam or cuda: a string
    parts = key.split(".")
    if len(parts) == 1:
        owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
        if len(owners) != 1:
            hint = (f"it is a key of [{'], ['.join(owners)}]; write section.{key}" if owners
                    else f"no section has it; sections: {', '.join(SECTIONS)}")
            raise ConfigError(f"{source}: --set {key}: {hint}")
        parts = [owners[0], key]
    node = raw
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: --set {key}: {p} is not a table")
        node = child
    node[parts[-1]] = value


# ---------------------------------------------------------------- type checks

def _matches(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a type annotation (int for float is fine; bool is never an int)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if origin in (list, tuple, typing.Sequence) or origin is not None and _is_sequence(origin):
        if not isinstance(value, list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation we do not model (a Tensor, a callable): leave it to the constructor


def _is_sequence(origin) -> bool:
    import collections.abc as abc
    return isinstance(origin, type) and issubclass(origin, abc.Sequence) and origin is not str


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if hint is type(None):
        return "absent (None)"
    names = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
             dict: "a table"}
    if hint in names:
        return names[hint]
    if origin is dict:
        return "a table"
    if origin is not None and (origin in (list, tuple) or _is_sequence(origin)):
        return f"an array of {_type_name(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "an array"
    return getattr(hint, "__name__", str(hint))


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    return f"{value!r} ({kind.get(type(value), type(value).__name__)})"
