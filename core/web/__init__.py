"""HTTP layer: middleware, endpoint declarations, OpenAPI, templates."""
