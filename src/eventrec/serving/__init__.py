"""eventrec.serving."""
