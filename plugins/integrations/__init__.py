"""Built-in integrations plugins."""
