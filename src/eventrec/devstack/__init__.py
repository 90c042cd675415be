"""Development tools, not part of the running service: the local broker and server."""

from eventrec.devstack.cluster import LocalRedisCluster
from eventrec.devstack.services import LocalServices, ServiceStatus

__all__ = ["LocalRedisCluster", "LocalServices", "ServiceStatus"]
