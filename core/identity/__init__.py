"""Identity core: users, password hashing, sessions, API keys, and the acting user."""
