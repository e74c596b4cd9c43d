"""tradehall: a self-hostable trading engine on a deterministic core."""

__version__ = "0.1.0"
