"""Shared test setup: tests never read the developer's own EVENTREC_* settings."""

import os

for _name in [name for name in os.environ if name.startswith("EVENTREC_")]:
    del os.environ[_name]
