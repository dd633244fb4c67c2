"""Callers and accounts: who is calling (`callers`), and the accounts API (`service`)."""
