"""tradehall.bus."""
