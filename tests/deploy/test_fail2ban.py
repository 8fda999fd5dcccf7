"""fail2ban bans addresses that keep failing to log in: its filter matches the app's own JSON
request log lines for a refused login (API and form), naming the client's address as nginx
forwarded it, and nothing else. Checked with fail2ban-regex on lines a real server wrote."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.app_process import PASSWORD, Client, base_env, free_port, serve, wait_ready
from tests.deploy.tools import need

pytestmark = pytest.mark.slow

FAIL2BAN = Path(__file__).resolve().parents[2] / "deploy" / "fail2ban"
FILTER = FAIL2BAN / "filter.d" / "multinotes-login.conf"
ATTACKER = "203.0.113.7"
NEIGHBOUR = "198.51.100.9"


def post(url: str, path: str, body: bytes, ctype: str, client: str) -> int:
    request = urllib.request.Request(
        url + path,
        data=body,
        method="POST",
        headers={"Content-Type": ctype, "Accept": "application/json", "X-Forwarded-For": client},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def app_log(tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("fail2ban")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(
        MULTINOTES_LOG_LEVEL="INFO",
        MULTINOTES_LOG_FORMAT="json",
        MULTINOTES_TRUSTED_PROXIES="127.0.0.1/32",
    )
    proc = serve(port, tmp / "data", env, tmp / "serve.log")
    try:
        wait_ready(url)
        Client(url).register_and_login("owner@example.com")
        wrong = json.dumps({"email": "owner@example.com", "password": "not it"}).encode()
        right = json.dumps({"email": "owner@example.com", "password": PASSWORD}).encode()
        form = b"email=owner%40example.com&password=nope"
        statuses = [
            post(url, "/api/auth/login", wrong, "application/json", ATTACKER),
            post(url, "/login", form, "application/x-www-form-urlencoded", ATTACKER),
            post(url, "/api/auth/login", right, "application/json", NEIGHBOUR),
            post(url, "/api/auth/register", b"{}", "application/json", NEIGHBOUR),
        ]
        assert statuses[:2] == [401, 401] and statuses[2] == 200, statuses
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return [line for line in (tmp / "serve.log").read_text().splitlines() if line.startswith("{")]


def failregex() -> str:
    text = FILTER.read_text()
    return re.search(r"^failregex\s*=\s*(.+)$", text, re.M).group(1).strip()  # type: ignore[union-attr]


def test_the_filter_names_the_forwarded_address_of_each_failed_login(app_log):
    # fail2ban's <HOST> is a named group around an address; the same with Python's re.
    pattern = re.compile(failregex().replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)"))
    hosts = [m.group("host") for line in app_log if (m := pattern.search(line))]
    assert hosts == [ATTACKER, ATTACKER]


def test_fail2ban_regex_accepts_the_filter_and_finds_both_failures(app_log, tmp_path):
    tool = need("fail2ban-regex", "fail2ban")
    log = tmp_path / "app.log"
    log.write_text("\n".join(app_log) + "\n")
    result = subprocess.run(
        [tool, "--print-all-matched", str(log), str(FILTER)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Failregex: 2 total", result.stdout), result.stdout
    matched = result.stdout.split("Matched line(s):", 1)[-1]
    assert matched.count(ATTACKER) == 2 and NEIGHBOUR not in matched, result.stdout


def test_the_jail_watches_sshd_and_the_app(tmp_path):
    jail = (FAIL2BAN / "jail.d" / "multinotes.local").read_text()
    assert "[sshd]" in jail and "[multinotes-login]" in jail
    assert "SYSLOG_IDENTIFIER=multinotes-web" in jail
