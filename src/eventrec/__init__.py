"""eventrec: event-driven recommendations of upcoming events for a ticketing platform."""

__version__ = "0.1.0"
