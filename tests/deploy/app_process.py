"""Run `multinotes serve` as a real process and talk to it, for the deploy drills."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MULTINOTES_LOG_LEVEL": "WARNING",
        "MULTINOTES_COOKIE_SECURE": "false",
    }
    env.update(extra)
    return env


def serve(port: int, data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "multinotes.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir.parent,
        )


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not come up within {timeout}s")
        time.sleep(0.1)


class Client:
    """A logged-in user over plain urllib: cookie and CSRF token carried by hand."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cookie = ""
        self.csrf = ""

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if self.cookie:
            request.add_header("Cookie", self.cookie)
        if self.csrf:
            request.add_header("X-CSRF-Token", self.csrf)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            cookie = response.headers.get("Set-Cookie")
            if cookie:
                self.cookie = cookie.split(";", 1)[0]
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def register_and_login(self, email: str) -> None:
        self.call(
            "POST", "/api/auth/register", {"email": email, "password": PASSWORD, "name": "Drill"}
        )
        self.login(email)

    def login(self, email: str) -> None:
        self.csrf = self.call("POST", "/api/auth/login", {"email": email, "password": PASSWORD})[
            "csrf_token"
        ]

    def open_stream(self, prompt: str, model: str = "demo/echo") -> Any:
        """Start an answer; returns the open HTTP response (read it to the end)."""
        conversation = self.call("POST", "/api/conversations", {})
        request = urllib.request.Request(
            f"{self.url}/api/conversations/{conversation['id']}/messages",
            data=json.dumps({"content": prompt, "models": [model]}).encode(),
            method="POST",
        )
        request.add_header("Content-Type", "application/json")
        request.add_header("Cookie", self.cookie)
        request.add_header("X-CSRF-Token", self.csrf)
        return urllib.request.urlopen(request, timeout=300)
