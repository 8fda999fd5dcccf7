"""The server-rendered pages, one module per area. They stand on ``multinotes.http`` and call the
feature packages' services, like the JSON API (``multinotes.api``), which they never import."""
