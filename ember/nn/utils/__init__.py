"""Gradient clipping and flat-vector views of parameters (PyTorch's ``torch.nn.utils`` names).

Example: total = ember.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
"""
from .clip_grad import clip_grad_norm_, clip_grad_value_
from .convert_parameters import parameters_to_vector, vector_to_parameters

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]
