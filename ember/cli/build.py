"""Model, optimizer, schedule and loss of a run config."""
from __future__ import annotations

import math

import ember
from .. import nn, optim, zoo
from .config import Config, ConfigError, layer_class
from .data import RunData

__all__ = ["build_model", "build_optimizer", "build_scheduler", "build_loss"]


def _data_defaults(data: RunData, seq_len: int) -> dict:
    """Arguments a zoo model can take from the data set when the config leaves them out."""
    shape = data.sample_shape
    out = {"num_classes": data.num_classes, "in_features": math.prod(shape)}
    if len(shape) == 3:  # (C, H, W)
        out.update(in_channels=shape[0], input_size=shape[-1])
    if data.vocab is not None:
        out.update(vocab_size=len(data.vocab), block_size=seq_len)
        del out["num_classes"], out["in_features"]
    return out


def build_model(cfg: Config, data: RunData, flat_logits: bool = True) -> nn.Module:
    """The model of ``cfg.model``, its sizes filled in from the data where the config leaves them out.

    Language models return logits (B, T, vocab); with ``flat_logits`` a forward hook reshapes them
    to (B * T, vocab) to match the flattened targets of ``TextWindows`` batches.
    """
    m = cfg.model
    if m.zoo:
        params = zoo.model_arguments(m.zoo)
        args = {k: v for k, v in _data_defaults(data, cfg.data.seq_len).items() if k in params}
        args.update(m.args)
        if data.vocab is not None and args.get("block_size", cfg.data.seq_len) < cfg.data.seq_len:
            raise ConfigError(f"{cfg.source}: [model] args block_size = {args['block_size']} is smaller "
                              f"than [data] seq_len = {cfg.data.seq_len}; make block_size >= seq_len")
        model = _construct(lambda: zoo.get_model(m.zoo, **args), f"{cfg.source}: [model] zoo = {m.zoo!r}")
    else:
        layers = []
        for i, spec in enumerate(m.layers):
            where = f"{cfg.source}: model.layers[{i}]"
            cls = layer_class(spec, where)
            kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "type"}
            layers.append(_construct(lambda: cls(**kwargs), f"{where} ({spec['type']})"))
        model = nn.Sequential(*layers)
    if data.vocab is not None and flat_logits:
        model.register_forward_hook(lambda mod, args, out: out.reshape(-1, out.shape[-1]))  # (B*T, V)
    return model.to(cfg.train.device)


def _construct(make, where: str):
    try:
        return make()
    except (ValueError, TypeError, ember.EmberError) as e:
        raise ConfigError(f"{where}: {e}") from None


def build_optimizer(cfg: Config, model: nn.Module) -> optim.Optimizer:
    o = cfg.optimizer
    params, common = model.parameters(), {"lr": o.lr, "weight_decay": o.weight_decay}
    if o.name == "sgd":
        return optim.SGD(params, momentum=o.momentum, nesterov=o.nesterov, **common)
    if o.name in ("adam", "adamw"):
        if len(o.betas) != 2:
            raise ConfigError(f"{cfg.source}: [optimizer] betas must be two numbers, got {o.betas}")
        return (optim.Adam if o.name == "adam" else optim.AdamW)(params, betas=tuple(o.betas), **common)
    if o.name == "rmsprop":
        return optim.RMSprop(params, momentum=o.momentum, **common)
    return optim.Adagrad(params, **common)


def build_scheduler(cfg: Config, opt: optim.Optimizer):
    """The per-epoch learning-rate schedule, or None."""
    s, lrs = cfg.schedule, optim.lr_scheduler
    if s.name == "none":
        return None
    if s.name == "step":
        return lrs.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "multistep":
        if not s.milestones:
            raise ConfigError(f"{cfg.source}: [schedule] milestones is missing: name = \"multistep\" "
                              "needs the epochs at which to decay, e.g. milestones = [30, 60]")
        return lrs.MultiStepLR(opt, milestones=s.milestones, gamma=s.gamma)
    if s.name == "exponential":
        return lrs.ExponentialLR(opt, gamma=s.gamma)
    return lrs.CosineAnnealingLR(opt, T_max=cfg.train.epochs, eta_min=s.eta_min)


def build_loss(cfg: Config) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
