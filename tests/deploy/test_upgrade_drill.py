"""The upgrade drill: deploy/upgrade.sh replaces a running release while an answer streams and
requests keep coming, and deploy/rollback.sh brings the previous release back, both without a
failed request.

Production mode for real: MariaDB, Redis, two web processes per release, a worker and the
scheduler, nginx in front (run from a temporary prefix). The scripts run with
LAUNCHER=background (plain processes instead of systemd units) in a temporary ROOT; each
release gets its own virtualenv that sees this checkout's packages.

MULTINOTES_DRILL_STREAM_SECONDS sets how long the answer streams (default 20; the figures in
deploy/README.md are from a 60-second run).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.app_process import Client, free_port
from tests.deploy.tools import need
from tests.support.sse import parse_sse

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
STREAM_SECONDS = float(os.environ.get("MULTINOTES_DRILL_STREAM_SECONDS", "20"))
WORD_DELAY_MS = 500

NGINX_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/ngx-body;
    proxy_temp_path {tmp}/ngx-proxy;
    fastcgi_temp_path {tmp}/ngx-fastcgi;
    uwsgi_temp_path {tmp}/ngx-uwsgi;
    scgi_temp_path {tmp}/ngx-scgi;
    upstream multinotes_web {{
        # web processes begin
        server 127.0.0.1:1;
        # web processes end
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://multinotes_web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""

# Installs a "release": a real virtualenv of its own whose multinotes script runs the release's
# interpreter, seeing this checkout's installed packages through a .pth file.
INSTALL = """#!/bin/sh
set -e
release=$1
{python} -m venv --without-pip "$release/venv"
site=$("$release/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo "import site; site.addsitedir('{site_packages}')" > "$site/checkout.pth"
cat > "$release/venv/bin/multinotes" <<SCRIPT
#!$release/venv/bin/python
from multinotes.cli import main
raise SystemExit(main())
SCRIPT
chmod +x "$release/venv/bin/multinotes"
"""


class Traffic(threading.Thread):
    """Requests through nginx, one new connection each, until stopped; counts every failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.sent = 0
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        paths = ["/healthz", "/login", "/api/openapi.json"]
        while not self.halt.is_set():
            path = paths[self.sent % len(paths)]
            try:
                with urllib.request.urlopen(self.url + path, timeout=10) as response:
                    response.read()
                    if response.status != 200:
                        self.failures.append(f"{path}: {response.status}")
            except Exception as exc:
                self.failures.append(f"{path}: {exc}")
            self.sent += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


@pytest.fixture
def site(production_services, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from tests.conftest import _reset_production

    nginx = need("nginx", "nginx")
    need("curl", "curl")
    need("flock", "util-linux")
    _reset_production(production_services)
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "data").mkdir()
    settings = {
        "MULTINOTES_MODE": "production",
        "MULTINOTES_DATABASE_URL": production_services["database_url"],
        "MULTINOTES_REDIS_URL": production_services["redis_url"],
        "MULTINOTES_REDIS_PREFIX": production_services["redis_prefix"],
        "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
        "MULTINOTES_DATA_DIR": str(tmp_path / "data"),
        "MULTINOTES_ALLOWED_HOSTS": "127.0.0.1",
        "MULTINOTES_TRUSTED_PROXIES": "127.0.0.1/32",
        "MULTINOTES_COOKIE_SECURE": "false",
        "MULTINOTES_LOG_LEVEL": "WARNING",
        "MULTINOTES_SHUTDOWN_TIMEOUT": "300",
        "MULTINOTES_EMAIL_VERIFICATION_REQUIRED": "false",
        "MULTINOTES_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
        "MULTINOTES_PLUGINS__DEMO__DELAY_MS": str(WORD_DELAY_MS),
    }
    env_file = tmp_path / "env"
    env_file.write_text("".join(f'{k}="{v}"\n' for k, v in settings.items()))
    install = tmp_path / "install.sh"
    install.write_text(
        INSTALL.format(python=sys.executable, site_packages=sysconfig.get_path("purelib"))
    )
    install.chmod(0o755)
    nginx_port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp_path, port=nginx_port, user="user root;" if os.geteuid() == 0 else ""
        )
    )
    ports_a = f"{free_port()} {free_port()}"
    ports_b = f"{free_port()} {free_port()}"
    script_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin",
        "ROOT": str(root),
        "ENV_FILE": str(env_file),
        "LAUNCHER": "background",
        "PORTS_A": ports_a,
        "PORTS_B": ports_b,
        "PROXY_CONF": str(conf),
        "PROXY_RELOAD": f"{nginx} -p {tmp_path} -c {conf} -s reload",
        "INSTALL_CMD": str(install),
        "READY_TIMEOUT": "180",  # a loaded CI machine starts Python slowly
    }
    # The schema and the demo plugin (off by default in production) before the first release.
    cli_env = {"PATH": script_env["PATH"], **settings}
    for args in (["migrate"], ["plugins", "enable", "demo"]):
        subprocess.run(
            [sys.executable, "-m", "multinotes.cli", *args],
            env=cli_env,
            check=True,
            cwd=tmp_path,
            capture_output=True,
        )
    subprocess.run([nginx, "-p", str(tmp_path), "-c", str(conf)], check=True)
    try:
        yield {
            "root": root,
            "env": script_env,
            "url": f"http://127.0.0.1:{nginx_port}",
            "ports": (ports_a, ports_b),
        }
    finally:
        subprocess.run([nginx, "-p", str(tmp_path), "-c", str(conf), "-s", "stop"], check=False)
        for pid_file in (root / "run").glob("*.pid"):
            try:
                os.kill(int(pid_file.read_text()), 9)
            except (OSError, ValueError):
                pass


def run_script(site: dict[str, Any], name: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(DEPLOY / name)],
        env=site["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = "".join(
        f"\n--- {log.name}\n" + log.read_text()[-2000:]
        for log in sorted((site["root"] / "run").glob("*.log"))
    )
    assert result.returncode == 0, result.stdout + result.stderr + logs
    return time.monotonic() - started, result.stdout


def serving_release(site: dict[str, Any]) -> set[str]:
    """The release folder of every web process on the active ports."""
    root: Path = site["root"]
    releases = set()
    for port in (root / "active-ports").read_text().split():
        pid = int((root / "run" / f"web@{port}.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        releases.add(Path(cmdline[0].decode()).parents[2].name)
    return releases


def alive(site: dict[str, Any], ports: str) -> list[str]:
    run = site["root"] / "run"
    out = []
    for port in ports.split():
        try:
            os.kill(int((run / f"web@{port}.pid").read_text()), 0)
            out.append(port)
        except (OSError, FileNotFoundError):
            pass
    return out


@pytest.mark.long
def test_upgrade_while_an_answer_streams_then_roll_back(site, capsys):
    root: Path = site["root"]
    run_script(site, "upgrade.sh")  # release A, the first install
    release_a = (root / "current").resolve().name
    assert serving_release(site) == {release_a}
    first_ports = (root / "active-ports").read_text().split()

    client = Client(site["url"])
    client.register_and_login("drill@example.com")
    traffic = Traffic(site["url"])
    traffic.start()

    # Release B. Its GATE_CMD holds the switch until an answer is streaming from release A,
    # so the old processes are told to stop in the middle of it.
    hold = root / "hold-switch"
    hold.touch()
    env = {
        **site["env"],
        "GATE_CMD": f"touch {root}/at-gate; while [ -e {hold} ]; do sleep 0.1; done",
    }
    upgrade = subprocess.Popen(
        ["bash", str(DEPLOY / "upgrade.sh")],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while not (root / "at-gate").exists():
        assert upgrade.poll() is None, upgrade.stdout.read() if upgrade.stdout else ""
        assert time.monotonic() < deadline, "the upgrade never reached its gate"
        time.sleep(0.1)
    words = max(1, int(STREAM_SECONDS * 1000 / WORD_DELAY_MS) - 23)
    stream = client.open_stream(" ".join(f"w{i}" for i in range(words)))
    stream_started = time.monotonic()
    received: list[bytes] = [stream.readline()]
    hold.unlink()
    for line in stream:  # read to the end, while the upgrade goes on
        received.append(line)
    stream_seconds = time.monotonic() - stream_started
    stream_ended_at = time.time()
    assert upgrade.stdout is not None
    output = list(upgrade.stdout)
    assert upgrade.wait(timeout=600) == 0, "".join(output)
    traffic.stop()

    release_b = (root / "current").resolve().name
    assert release_b != release_a
    assert (root / "previous").resolve().name == release_a
    assert serving_release(site) == {release_b}
    assert (root / "active-ports").read_text().split() != first_ports
    assert alive(site, " ".join(first_ports)) == []  # drained and gone
    events = parse_sse(b"".join(received).decode())
    assert events[-1][0] == "end"
    done = [data for name, data in events if name == "done"]
    assert [d["status"] for d in done] == ["complete"]
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert f"w{words - 1}" in text
    # The old process was told to stop while the answer was still streaming.
    drain_began = next(line for line in output if "Draining" in line).split()[1]
    assert drain_began < time.strftime("%H:%M:%S", time.gmtime(stream_ended_at)), output
    assert traffic.failures == [], traffic.failures[:5]
    upgrade_requests = traffic.sent

    # Rollback: release A again, on the other ports, with requests still coming.
    traffic = Traffic(site["url"])
    traffic.start()
    time.sleep(1)
    rollback_seconds, _ = run_script(site, "rollback.sh")
    time.sleep(1)
    traffic.stop()
    assert traffic.failures == [], traffic.failures[:5]
    assert (root / "current").resolve().name == release_a
    assert serving_release(site) == {release_a}
    assert client.call("GET", "/api/me")["email"] == "drill@example.com"

    with capsys.disabled():
        print(
            f"\nupgrade drill: a {stream_seconds:.1f}s answer completed across the upgrade, "
            f"{upgrade_requests} requests 0 failed; rollback.sh {rollback_seconds:.1f}s, "
            f"{traffic.sent} requests 0 failed\n" + "".join(output)
        )
