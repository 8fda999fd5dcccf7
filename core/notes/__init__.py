"""Notes: folders (a tree per user), documents with versions, trash, and provenance."""
