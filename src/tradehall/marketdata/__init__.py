"""tradehall.marketdata."""
