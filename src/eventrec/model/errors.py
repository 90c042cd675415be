"""Errors of the numeric core."""

from __future__ import annotations

from eventrec.errors import EventrecError


class ModelFitError(EventrecError):
    """A model could not be fitted (empty or too small matrix, non-finite factors).

    Never publish the result of a fit that raised this; retrying on the same data fails
    the same way.
    """
