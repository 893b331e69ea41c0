"""Dashboard views (one module per navigation entry)."""
