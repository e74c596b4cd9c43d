"""tradehall.store."""
