"""Optimizers and learning-rate schedules (PyTorch names and semantics).

Example: opt = ember.optim.Adam(model.parameters(), lr=1e-3); opt.zero_grad(); loss.backward(); opt.step()
"""
from .optimizer import Optimizer, OptimizerStateError
from .sgd import SGD
from .adam import Adam
from .adamw import AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from . import lr_scheduler

__all__ = ["Optimizer", "OptimizerStateError", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
