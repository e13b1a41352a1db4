"""Ports for the servers tests start are handed out once: two servers started moments apart never get one."""
from __future__ import annotations

import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.unit


def test_a_free_port_is_never_handed_out_twice_before_its_server_binds_it():
    ports = [free_port() for _ in range(300)]  # none is bound meanwhile
    assert len(set(ports)) == len(ports)
