"""Built-in exports plugins."""
