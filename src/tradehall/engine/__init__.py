"""tradehall.engine."""
