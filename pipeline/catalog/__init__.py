"""The catalog: the source of truth for what was received, stored and done."""
