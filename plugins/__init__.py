"""Built-in plugins. Each subpackage is one plugin, loaded through the ``multinotes``
entry points like any third-party plugin."""
