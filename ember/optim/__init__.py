"""Owned by the optimizer work (issue 4)."""
