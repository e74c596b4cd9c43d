"""tradehall.cli."""
