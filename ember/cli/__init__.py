"""The ember command (owned by the fit/CLI work, issue 5)."""
