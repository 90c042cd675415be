"""eventrec.synth."""
