"""eventrec.consumer."""
