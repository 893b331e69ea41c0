"""Built-in metrics (registered through the transfer_advisor entry-point group)."""
