"""Built-in scenarios (registered through the transfer_advisor entry-point group)."""
