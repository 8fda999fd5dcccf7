"""Files: uploads within a storage quota, kept in a storage backend (local folder or S3)."""
