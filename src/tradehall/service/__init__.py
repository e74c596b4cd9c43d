"""tradehall.service."""
