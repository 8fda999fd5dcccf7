"""SIGTERM (what `systemctl stop` and the upgrade's drain send) stops a web process taking new
connections at once while the answers it is streaming run to their end, within
MULTINOTES_SHUTDOWN_TIMEOUT; the units give it that long before systemd kills it."""

from __future__ import annotations

import configparser
import http.client
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.deploy.app_process import Client, base_env, free_port, serve, wait_ready
from tests.support.sse import parse_sse

pytestmark = pytest.mark.slow

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def test_sigterm_refuses_new_connections_and_lets_open_streams_finish(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # 40 words at 150 ms: a stream of about 6 s, far beyond aiohttp's own 0-second default
    # drain of idle connections but inside the shutdown timeout.
    env = base_env(MULTINOTES_PLUGINS__DEMO__DELAY_MS="150", MULTINOTES_SHUTDOWN_TIMEOUT="120")
    proc = serve(port, tmp_path / "data", env, tmp_path / "serve.log")
    try:
        wait_ready(url)
        client = Client(url)
        client.register_and_login("drain@example.com")
        response = client.open_stream(" ".join(f"word{i}" for i in range(20)))
        body: list[bytes] = []
        reader = threading.Thread(target=lambda: body.append(response.read()))
        reader.start()
        time.sleep(1.0)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # New connections are refused within a moment of the signal...
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        # ...while the open answer streams to its end.
        reader.join(timeout=60)
        assert not reader.is_alive()
        events = parse_sse(body[0].decode())
        names = [name for name, _ in events]
        assert names[-1] == "end", names[-3:]
        done = [data for name, data in events if name == "done"]
        assert done and done[0]["status"] == "complete", done
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - stopped_at > 3  # it did wait for the stream
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_drain_ends_at_the_shutdown_timeout(tmp_path):
    """A stream longer than MULTINOTES_SHUTDOWN_TIMEOUT is stopped (and settled) then, so a
    stuck client cannot hold a stopping process forever."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(MULTINOTES_PLUGINS__DEMO__DELAY_MS="500", MULTINOTES_SHUTDOWN_TIMEOUT="1")
    proc = serve(port, tmp_path / "data", env, tmp_path / "serve.log")
    try:
        wait_ready(url)
        client = Client(url)
        client.register_and_login("cut@example.com")
        response = client.open_stream(" ".join(f"word{i}" for i in range(40)))
        time.sleep(1.0)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - stopped_at < 12
        try:
            text = response.read()
        except http.client.IncompleteRead as cut:
            text = cut.partial
        names = [name for name, _ in parse_sse(text.decode(errors="replace"))]
        assert "end" not in names
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("unit", ["multinotes-web@.service"])
def test_web_unit_waits_longer_than_the_app_drains(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(SYSTEMD / unit)
    service = parser["Service"]
    stop_after = _seconds(service["TimeoutStopSec"])
    env = dict(line.split("=", 1) for line in service.get("Environment", "").split() if "=" in line)
    drain = float(env.get("MULTINOTES_SHUTDOWN_TIMEOUT", "0"))
    assert drain >= 600, "answers may stream for ten minutes"
    assert stop_after >= drain + 15


def _seconds(value: str) -> float:
    value = value.strip()
    if value.endswith("min"):
        return float(value[:-3]) * 60
    if value.endswith("s"):
        return float(value[:-1])
    return float(value)
