"""eventrec.trainer."""
