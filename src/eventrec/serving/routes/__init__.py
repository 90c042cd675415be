"""The HTTP routes of serving, one router per concern (assembled by ``serving.app``)."""
