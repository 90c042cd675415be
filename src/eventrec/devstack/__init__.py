"""Development tools, not part of the running service: the local broker and server."""

from eventrec.devstack.services import LocalServices, ServiceStatus

__all__ = ["LocalServices", "ServiceStatus"]
