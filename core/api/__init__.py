"""JSON API handlers, one module per area. They stand on ``multinotes.http`` and call the feature
packages' services, like the pages (``multinotes.web``), which they never import."""
