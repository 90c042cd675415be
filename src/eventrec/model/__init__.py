"""eventrec.model."""
