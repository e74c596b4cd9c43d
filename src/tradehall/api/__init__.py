"""tradehall.api."""
