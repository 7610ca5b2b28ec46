"""``ember.callbacks``: the callbacks of ``fit`` (Keras names). See ember.training.callbacks.

Example: model.fit(x, y, callbacks=[ember.callbacks.EarlyStopping(patience=3)])
"""
from .training.callbacks import (Callback, CSVLogger, EarlyStopping, LearningRateScheduler,  # noqa: F401
                                 ModelCheckpoint, ReduceLROnPlateau, TensorBoard, TerminateOnNaN)
from .training.history import History  # noqa: F401
from .training.progress import ProgbarLogger  # noqa: F401

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "ReduceLROnPlateau",
           "CSVLogger", "TensorBoard", "TerminateOnNaN", "History", "ProgbarLogger"]
