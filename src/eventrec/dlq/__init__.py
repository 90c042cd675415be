"""The dead-letter topic: reading it back, summarising it, and replaying what is fixed."""
