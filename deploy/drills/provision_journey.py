"""A person's first minutes on a freshly provisioned server, through nginx over HTTPS.

Run on the server (deploy/drills/provision-drill.sh runs it inside the container) with Debian's
python3 and nothing else: the standard library only. The certificate is the self-signed one
provision.sh makes, so it is not verified; everything else is as a browser would see it.

    python3 provision_journey.py --domain notes.drill.test --outbox /var/lib/multinotes/data/outbox

Checks, each printed as one PASS line (the first failure stops with a FAIL line, exit 1):
/healthz and /readyz through nginx, port 80 redirecting to HTTPS, the login page, a static file
served by nginx with its year-long cache, registering (the first account: the admin), the
verification mail the worker wrote to the outbox and its link, logging in, switching on the demo
provider as that admin, a new chat and an answer streamed from demo/echo, event by event.
``--login-only`` repeats only what a returning person does (health, log in, a new chat and an
answer), for after a restart.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import http.client
import json
import re
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

PASSWORD = "drill password, long enough 42"
EMAIL = "admin@example.com"  # .test is refused as a special-use domain


class Failed(Exception):
    pass


def check(ok: bool, what: str, detail: object = "") -> None:
    if not ok:
        raise Failed(f"{what}: {detail}"[:2000])
    print(f"PASS {what}", flush=True)


class Https:
    """One client of nginx on 127.0.0.1:443 with SNI and Host set to the domain; keeps the
    session cookie and the CSRF token like the web UI does."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.cookie = ""
        self.csrf = ""

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 30
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", 443, timeout=timeout, context=self.context)
        # SNI names the domain, as for a browser that resolves it to this machine.
        conn.sock = self.context.wrap_socket(
            socket.create_connection(("127.0.0.1", 443), timeout=timeout),
            server_hostname=self.domain,
        )
        headers = {"Host": self.domain, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        found = {k.lower(): v for k, v in response.getheaders()}
        for name, value in response.getheaders():
            if name.lower() == "set-cookie" and value.split("=", 1)[0].endswith("session"):
                self.cookie = value.split(";", 1)[0]
        return response.status, found, raw

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, raw = self.request(method, path, body)
        try:
            return status, json.loads(raw) if raw.strip() else None
        except ValueError:
            return status, raw[:500]


def parse_sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


def health(client: Https) -> None:
    """/healthz through nginx, waiting as a monitor would: right after `systemctl restart` the
    web processes are still starting (their units are Type=simple) and nginx answers 502."""
    started = time.monotonic()
    while True:
        status, _, body = client.request("GET", "/healthz")
        if status == 200 or time.monotonic() - started > 90:
            break
        time.sleep(0.5)
    waited = time.monotonic() - started
    check(
        status == 200,
        "GET /healthz through nginx (HTTPS)"
        + (f" after {waited:.0f}s of 502" if waited > 1 else ""),
        (status, body),
    )
    deadline = time.monotonic() + 90
    while True:
        status, _, body = client.request("GET", "/readyz")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    check(status == 200, "GET /readyz: database, Redis, worker and scheduler ready", body)


def log_in(client: Https) -> None:
    status, body = client.json("POST", "/api/auth/login", {"email": EMAIL, "password": PASSWORD})
    check(status == 200 and bool(client.cookie), "log in", (status, body))
    client.csrf = body["csrf_token"]


def chat(client: Https, prompt: str) -> None:
    status, conversation = client.json("POST", "/api/conversations", {})
    check(
        status == 201, "POST /api/conversations (a new chat) through nginx", (status, conversation)
    )
    started = time.monotonic()
    status, headers, raw = client.request(
        "POST",
        f"/api/conversations/{conversation['id']}/messages",
        {"content": prompt, "models": ["demo/echo"]},
        timeout=120,
    )
    check(
        status == 200 and headers.get("content-type", "").startswith("text/event-stream"),
        "the answer streams as server-sent events",
        (status, headers, raw[:500]),
    )
    events = parse_sse(raw.decode())
    done = [data for name, data in events if name == "done"]
    text = "".join(data.get("text", "") for name, data in events if name == "delta")
    deltas = sum(1 for name, _ in events if name == "delta")
    check(
        [d.get("status") for d in done] == ["complete"] and prompt.split()[0] in text,
        f"demo/echo answered in {deltas} events, {time.monotonic() - started:.1f}s",
        events[-5:],
    )


def first_visit(client: Https, outbox: Path) -> None:
    health(client)
    plain = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    plain.request("GET", "/login", headers={"Host": client.domain})
    redirect = plain.getresponse()
    check(
        redirect.status == 301
        and redirect.getheader("Location") == f"https://{client.domain}/login",
        "port 80 redirects to HTTPS",
        (redirect.status, redirect.getheader("Location")),
    )
    status, headers, page = client.request("GET", "/login")
    check(status == 200 and b"<form" in page, "GET /login: the page", (status, page[:300]))
    check(
        "max-age=" in headers.get("strict-transport-security", ""),
        "the page says Strict-Transport-Security",
        headers,
    )
    static = re.search(rb'(/static/[^"?]+\.(?:css|js))(\?v=[^"]*)?"', page)
    check(static is not None, "the page links a static file", page[:300])
    assert static is not None
    status, headers, _ = client.request("GET", static.group(1).decode())
    check(
        status == 200 and "immutable" in headers.get("cache-control", ""),
        f"GET {static.group(1).decode()} from nginx with a year-long cache",
        (status, headers),
    )

    before = set(outbox.glob("*.eml")) if outbox.is_dir() else set()
    status, body = client.json(
        "POST", "/api/auth/register", {"email": EMAIL, "password": PASSWORD, "name": "Drill"}
    )
    check(status == 201, "register the first account", (status, body))
    link = None
    deadline = time.monotonic() + 60
    while link is None and time.monotonic() < deadline:
        for path in sorted(set(outbox.glob("*.eml")) - before):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] and EMAIL in str(message["To"]):
                part = message.get_body(preferencelist=("plain",))
                found = re.search(
                    r"https://\S+/verify\?token=\S+", part.get_content() if part else ""
                )
                if found:
                    link = found.group(0)
        time.sleep(0.5)
    check(
        link is not None,
        f"the worker wrote the verification mail to {outbox}",
        sorted(outbox.glob("*")),
    )
    assert link is not None
    path = link.split(client.domain, 1)[1]
    status, _, page = client.request("GET", path)
    check(status == 200, "open the verification link", (status, page[:300]))

    log_in(client)
    status, me = client.json("GET", "/api/me")
    check(
        status == 200 and me.get("role") == "admin" and me.get("email_verified") is True,
        "the first account is a verified admin",
        me,
    )
    status, body = client.json("PATCH", "/api/admin/plugins/demo", {"enabled": True})
    check(status == 200, "the admin switches the demo provider on", (status, body))
    # Every web process hears of it over the Redis bus; nginx may pick any of them.
    time.sleep(2)
    chat(client, "Hello from the provision drill")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", required=True)
    parser.add_argument("--outbox", type=Path, default=Path("/var/lib/multinotes/data/outbox"))
    parser.add_argument("--login-only", action="store_true")
    args = parser.parse_args()
    client = Https(args.domain)
    try:
        if args.login_only:
            health(client)
            log_in(client)
            chat(client, "Hello again after the restart")
        else:
            first_visit(client, args.outbox)
    except Failed as exc:
        print(f"FAIL {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
