"""The `multinotes` command line, run as a real subprocess on the embedded default."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

STRONG = secrets.token_urlsafe(48)


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MULTINOTES_LOG_LEVEL": "ERROR"}
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "multinotes.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        cwd=cwd,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_gen_secret_prints_a_strong_random_key():
    first, second = cli("gen-secret").stdout.strip(), cli("gen-secret").stdout.strip()
    assert first != second and len(first) >= 48


def test_check_fails_on_the_embedded_defaults_and_names_each_problem(tmp_path):
    result = cli("check", cwd=tmp_path, check=False)
    assert result.returncode == 1
    for name in (
        "mode",
        "secret_key",
        "allowed_hosts",
        "cookies",
        "database",
        "redis",
        "mail",
        "public_url",
    ):
        assert f"[FAIL] {name}" in result.stdout


def test_production_refuses_to_start_with_debug_or_a_weak_key(tmp_path):
    base = {
        "MULTINOTES_MODE": "production",
        "MULTINOTES_ALLOWED_HOSTS": "x.example.com",
        "MULTINOTES_DATABASE_URL": "mysql+aiomysql://mn:pw@127.0.0.1/mn",
        "MULTINOTES_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    for bad in (
        {"MULTINOTES_SECRET_KEY": "secret"},
        {"MULTINOTES_SECRET_KEY": STRONG, "MULTINOTES_DEBUG": "1"},
    ):
        result = cli("serve", "--port", "1", env=base | bad, cwd=tmp_path, check=False)
        assert result.returncode == 1
        assert "Refusing to start in production" in result.stderr


@pytest.mark.long
def test_migrate_admin_create_and_plugins_commands(tmp_path):
    data = str(tmp_path / "data")
    assert "Database at revision" in cli("migrate", "--data-dir", data).stdout
    created = cli(
        "admin",
        "create",
        "--email",
        "Root@Example.com",
        "--password",
        "correct horse battery staple",
        "--data-dir",
        data,
    )
    assert "root@example.com is an admin." in created.stdout

    listing = json.loads(cli("plugins", "list", "--json", "--data-dir", data).stdout)
    enabled = {p["name"]: p["enabled"] for p in listing}
    assert enabled["demo"] is True and enabled["markdown"] is True  # other built-ins vary
    assert "Plugin demo disabled." in cli("plugins", "disable", "demo", "--data-dir", data).stdout
    text = cli("plugins", "list", "--data-dir", data).stdout
    assert "demo" in text and "disabled" in text
    info = json.loads(cli("plugins", "info", "demo", "--data-dir", data).stdout)
    assert info["enabled"] is False and info["settings"][0]["name"] == "delay_ms"
    missing = cli("plugins", "enable", "nope", "--data-dir", data, check=False)
    assert missing.returncode == 1 and "No plugin named 'nope'" in missing.stderr


def test_secrets_rotate_reencrypts_under_the_new_key(tmp_path):
    from tests.support.secrets_fixture import store_secret_with_key

    data = tmp_path / "data"
    old_key, new_key = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    ciphertext = store_secret_with_key(data, old_key, "sk-test-rotate-me-0000")
    result = cli(
        "secrets",
        "rotate",
        "--data-dir",
        str(data),
        env={"MULTINOTES_SECRET_KEY": new_key, "MULTINOTES_OLD_SECRET_KEYS": old_key},
    )
    assert "Re-encrypted 1 secret(s)" in result.stdout
    with sqlite3.connect(data / "multinotes.db") as db:
        (rotated,) = db.execute("SELECT ciphertext FROM secrets").fetchone()
    assert rotated != ciphertext
    from multinotes.secretbox import SecretBox

    assert SecretBox([new_key]).decrypt(rotated) == "sk-test-rotate-me-0000"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_prints_its_url_and_creates_the_data_dir(tmp_path):
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MULTINOTES_LOG_LEVEL": "ERROR"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "multinotes.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "fresh"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as response:
                    assert json.load(response) == {"status": "ok"}
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (tmp_path / "fresh" / "multinotes.db").exists()
        assert (tmp_path / "fresh" / "secret.key").stat().st_mode & 0o077 == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_on_a_busy_port_says_so_in_one_line_and_fails(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert "--port" in lines[0] and "MULTINOTES_PORT" in lines[0]


def _serve_and_browse(tmp_path: Path, *extra: str) -> str:
    """``multinotes serve`` at the default log level, asked a few pages; what it printed."""
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "multinotes.cli", "serve", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                for path in ("/healthz", "/login", "/healthz"):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}").close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    return output


def test_serve_in_embedded_mode_prints_its_address_not_every_request(tmp_path):
    output = _serve_and_browse(tmp_path)
    assert "http://127.0.0.1:" in output
    assert '"event": "request"' not in output and "/login" not in output, output
    assert "--verbose" in output  # it says how to see them
    verbose = _serve_and_browse(tmp_path, "--verbose")
    assert '"path": "/login"' in verbose
