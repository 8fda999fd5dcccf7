"""Privacy: a user's data exported as a zip, account deletion after a grace period, and the
legal pages (privacy policy, terms, cookie policy)."""
