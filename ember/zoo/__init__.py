"""Reference models: MLP, LeNet-5, CIFAR ResNet-20, a small VGG, a character LSTM and a small GPT.

Example: model = ember.zoo.get_model("lenet5", input_size=8)

Every model is an ordinary ``nn.Module`` built from ember layers, so ``state_dict`` keys follow the
layer names and a model trains with ``fit``, a hand-written loop or ``ember train CONFIG.toml``.
"""
from __future__ import annotations

import inspect
from typing import Callable

from ..errors import EmberError
from .char_lstm import CharLSTM
from .gpt import GPT
from .lenet import LeNet5
from .mlp import MLP
from .resnet import ResNet, resnet20
from .vgg import VGG

__all__ = ["MODELS", "get_model", "model_arguments", "MLP", "LeNet5", "ResNet", "resnet20", "VGG",
           "CharLSTM", "GPT"]

# name -> constructor. Language models (those taking vocab_size) get it from the training text.
MODELS: dict[str, Callable] = {
    "mlp": MLP,
    "lenet5": LeNet5,
    "resnet20": resnet20,
    "vgg": VGG,
    "char_lstm": CharLSTM,
    "gpt": GPT,
}


def model_arguments(name: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments zoo model ``name`` accepts. ``model_arguments("mlp")["hidden"].default``."""
    if name not in MODELS:
        raise EmberError(f"ember.zoo: unknown model {name!r}; available: {', '.join(MODELS)}")
    return dict(inspect.signature(MODELS[name]).parameters)


def get_model(name: str, **kwargs):
    """Build zoo model ``name`` with keyword arguments. ``get_model("resnet20", num_classes=10)``."""
    allowed = model_arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise EmberError(f"ember.zoo: {name} has no argument {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed)}")
    return MODELS[name](**kwargs)
