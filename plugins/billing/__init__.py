"""Built-in billing plugins."""
