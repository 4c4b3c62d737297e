"""The dev stack runs the identity simulators as processes: started where the ivr service posts
to, ready when their /healthz answers, restarted by the supervisor when they die."""

from __future__ import annotations

import signal
import socket

import pytest

from devstack.stack import Stack
from ivr.config import load_settings
from ivr.risk.decision import BindingAnswer, IdentityAnswer
from ivr.risk.identity import identity_providers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def stack(tmp_path, monkeypatch):
    # The children read the environment, as under `make run`: free ports, not the fixed ones.
    monkeypatch.setenv("VOICEPAY_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("VOICEPAY_POLICE_URL", f"http://127.0.0.1:{_free_port()}/v1/identity/check")
    monkeypatch.setenv("VOICEPAY_BINDING_URL", f"http://127.0.0.1:{_free_port()}/v1/binding/check")
    stack = Stack(load_settings())
    stack.log_dir.mkdir(parents=True)
    try:
        for spec in stack.identity_specs():
            stack.supervisor.start(spec)
        yield stack
    finally:
        stack.stop()


async def test_the_stack_starts_both_simulators_and_restarts_a_dead_one(stack) -> None:
    assert sorted(stack.supervisor.names()) == ["binding", "police"]
    first = stack.supervisor.pid("police")
    assert stack.kill("police", signal.SIGKILL) != first     # back, and ready again
    async with identity_providers(stack.settings) as providers:
        assert await providers.police.check("Zhang San", "11010519491231002X") is IdentityAnswer.MATCH
        assert (await providers.binding.check("6221881000000011", "13900000001")
                is BindingAnswer.BOUND)
    assert "police simulator listening" in (stack.log_dir / "police.log").read_text()
