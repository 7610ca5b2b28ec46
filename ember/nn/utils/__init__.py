"""Gradient clipping and other helpers (owned by the optimizer work, issue 4)."""
