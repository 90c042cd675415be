"""The local stack's refusals name what moves the whole stack (no server is started)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.errors import LocalServicesError


def test_a_taken_redis_port_names_what_moves_the_whole_stack(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        local = LocalServices(Settings(state_dir=tmp_path, local_redis_port=port))
        with pytest.raises(LocalServicesError) as refused:
            local.up()
    message = str(refused.value)
    assert f"port {port} is taken by a process eventrec did not start" in message
    assert "move the whole local stack with EVENTREC_LOCAL_REDIS_PORT" in message
    assert "every eventrec client follows it" in message
    assert not (tmp_path / "redis" / "pid").exists()
