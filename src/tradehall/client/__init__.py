"""tradehall.client."""
