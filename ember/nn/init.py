"""Owned by the nn work (issue 3): initializers."""
