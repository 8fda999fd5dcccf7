"""The credit wallet: an append-only ledger per user, reservations for requests in flight."""
