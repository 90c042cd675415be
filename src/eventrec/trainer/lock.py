"""The training lock: one trainer fits at a time, across processes and machines.

SET NX PX with a random token; a background thread renews the expiry while the holder
works, and release is a compare-and-delete, so a trainer whose lock expired can never
delete the lock of the trainer that took over.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

from eventrec.store.client import REDIS_ERRORS

log = logging.getLogger("eventrec.trainer")

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TrainingLock:
    """A Redis lock with expiry, renewed every third of its lifetime while held.

    Parameters
    ----------
    client : redis.Redis
    key : str
        The lock's key (``Keys.train_lock``).
    ttl_seconds : float
        Expiry; a holder that dies releases the lock after this long.
    """

    def __init__(self, client: Any, key: str, ttl_seconds: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = max(1000, int(ttl_seconds * 1000))
        self.token = ""
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    @property
    def held(self) -> bool:
        return bool(self.token) and not self.lost.is_set()

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else value.decode()

    def acquire(
        self,
        wait_seconds: float = 0.0,
        poll_seconds: float = 0.5,
        stop: threading.Event | None = None,
    ) -> bool:
        """Take the lock, waiting up to ``wait_seconds`` (or until ``stop``); False if not."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + wait_seconds
        while True:
            if self.client.set(self.key, token, nx=True, px=self.ttl_ms):
                self.token = token
                self.lost.clear()
                self._stop.clear()
                self._renewer = threading.Thread(
                    target=self._keep_alive, name="train-lock-renewer", daemon=True
                )
                self._renewer.start()
                return True
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return False
            time.sleep(poll_seconds)

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                renewed = int(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
            except Exception:  # a blip is retried next period; expiry is the backstop
                log.warning("could not renew the training lock", exc_info=True)
                continue
            if not renewed:
                log.error("lost the training lock: this fit will not be published")
                self.lost.set()
                return

    def release(self) -> None:
        """Stop renewing and delete the lock if this trainer still holds it."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        if self.token:
            try:
                self._release(keys=[self.key], args=[self.token])
            except REDIS_ERRORS:
                log.warning("could not release the training lock; it expires by itself")
            finally:
                self.token = ""
