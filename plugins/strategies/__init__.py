"""Built-in strategies (registered through the transfer_advisor entry-point group)."""
