"""eventrec.store."""
