"""eventrec.evaluation."""
