"""Keras-style training (owned by the fit work, issue 5): compile_model, fit, evaluate, predict, summary."""
