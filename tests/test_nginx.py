"""The shipped nginx site, for real: Debian's nginx with deploy/nginx/multinotes.conf in front of
a running `multinotes serve`, and the main journeys through it over HTTPS.

The config is rendered as provision.sh renders it (the upstream list from the web ports), plus
what a test needs instead of root: free ports on 127.0.0.1, a self-signed certificate, and a
private prefix for the pid file, logs and temp folders. Skipped locally without nginx, an error
under CI.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.deploy.app_process import base_env, free_port, serve
from tests.deploy.tools import need

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy/nginx/multinotes.conf"
STATIC = ROOT / "webui/static"
DOMAIN = "notes.example.com"
MiB = 1024 * 1024
MAX_UPLOAD = 25 * MiB  # MULTINOTES_MAX_UPLOAD_BYTES, the app's default
PASSWORD = "correct horse battery staple"


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/nginx/multinotes.conf no longer has {old!r} once"
    return text.replace(old, new)


def render_site(app_port: int, http_port: int, https_port: int, prefix: Path) -> str:
    """deploy/nginx/multinotes.conf as provision.sh installs it, on test ports and paths."""
    site = SITE.read_text()
    # The upstream list, as provision.sh writes it from WEB_PORTS.
    site = re.sub(
        r"(# web processes begin\n).*?(\s*# web processes end)",
        lambda m: f"{m[1]}    server 127.0.0.1:{app_port} max_fails=3 fail_timeout=5s;{m[2]}",
        site,
        flags=re.S,
    )
    site = replace_once(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    site = replace_once(site, "listen [::]:80;", "")
    site = replace_once(site, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    site = replace_once(site, "listen [::]:443 ssl http2;", "")
    site = replace_once(site, "/etc/multinotes/tls/fullchain.pem", str(prefix / "cert.pem"))
    site = replace_once(site, "/etc/multinotes/tls/privkey.pem", str(prefix / "key.pem"))
    site = replace_once(site, "alias /opt/multinotes/static/;", f"alias {STATIC}/;")
    return replace_once(site, "root /var/www/letsencrypt;", f"root {prefix / 'acme'};")


def main_config(prefix: Path) -> str:
    """What /etc/nginx/nginx.conf provides around a site, with every path in ``prefix``."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root nginx's workers would run as nobody, who cannot read the test's private folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {prefix / "access.log"};
{temp}
    include {prefix / "multinotes.conf"};
}}
"""


def self_signed(prefix: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (prefix / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (prefix / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def wait_app(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the app answers /readyz for the served host name."""
    deadline = time.monotonic() + 60
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz", headers={"Host": DOMAIN})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("the app did not start:\n" + log.read_text())
        time.sleep(0.1)


def wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("nginx did not start:\n" + log.read_text())
        time.sleep(0.05)


@dataclass
class Stack:
    https_port: int
    http_port: int
    cert: Path
    prefix: Path

    @property
    def url(self) -> str:
        return f"https://{DOMAIN}:{self.https_port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = need("nginx", "nginx")
    prefix = tmp_path_factory.mktemp("nginx")
    for folder in ("tmp", "acme"):
        (prefix / folder).mkdir()
    self_signed(prefix)
    app_port, http_port, https_port = free_port(), free_port(), free_port()
    (prefix / "multinotes.conf").write_text(render_site(app_port, http_port, https_port, prefix))
    (prefix / "nginx.conf").write_text(main_config(prefix))
    test = subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert test.returncode == 0, test.stderr

    data = prefix / "app" / "data"
    data.parent.mkdir()
    env = base_env(
        MULTINOTES_ALLOWED_HOSTS=DOMAIN,
        MULTINOTES_PUBLIC_URL=f"https://{DOMAIN}:{https_port}",
        MULTINOTES_TRUSTED_PROXIES="127.0.0.1/32,::1/128",
        MULTINOTES_COOKIE_SECURE="true",
        MULTINOTES_PLUGINS__DEMO__DELAY_MS="40",
    )
    app = serve(app_port, data, env, prefix / "app.log")
    proxy = subprocess.Popen(
        [
            nginx,
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),
            "-e",
            "stderr",
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(prefix / "nginx.stderr", "wb"),  # noqa: SIM115 - closed with the process
    )
    try:
        wait_app(app_port, app, prefix / "app.log")
        wait_port(https_port, proxy, prefix / "nginx.stderr")
        yield Stack(https_port, http_port, prefix / "cert.pem", prefix)
    finally:
        for process in (proxy, app):
            process.terminate()
        for process in (proxy, app):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ToLoopback(AbstractResolver):
    """notes.example.com is this machine, as DNS would say on the server."""

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        assert host == DOMAIN, host
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


class Browser:
    """One client session through nginx over TLS, verifying the test's certificate."""

    def __init__(self, stack: Stack) -> None:
        context = ssl.create_default_context(cafile=str(stack.cert))
        self.stack = stack
        self.session = aiohttp.ClientSession(
            base_url=stack.url,
            connector=aiohttp.TCPConnector(ssl=context, resolver=ToLoopback()),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        self.csrf = ""

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, "Accept": "application/json", **(extra or {})}

    async def register_and_login(self, email: str) -> dict[str, Any]:
        async with self.session.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Via nginx"}
        ) as response:
            assert response.status == 201, await response.text()
        async with self.session.post(
            "/api/auth/login", json={"email": email, "password": PASSWORD}
        ) as response:
            body = await response.json()
            assert response.status == 200, body
        self.csrf = body["csrf_token"]
        return dict(body["user"])


def unique_email(label: str) -> str:
    return f"{label}-{time.monotonic_ns()}@example.com"


async def test_login_sets_a_secure_session_cookie_over_https(stack):
    async with Browser(stack) as browser:
        user = await browser.register_and_login(unique_email("login"))
        assert user["email"].endswith("@example.com")
        # The app sees https through the proxy headers: its cookie is Secure and __Host-.
        names = {cookie.key: cookie for cookie in browser.session.cookie_jar}
        assert any(name.startswith("__Host-") for name in names), names
        async with browser.session.get("/api/sessions") as response:
            assert response.status == 200, await response.text()


async def test_plain_http_redirects_to_https(stack):
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{stack.http_port}/chat?x=1",
            headers={"Host": DOMAIN},
            allow_redirects=False,
        ) as response,
    ):
        assert response.status == 301
        assert response.headers["Location"] == f"https://{DOMAIN}/chat?x=1"


async def test_a_new_chat_starts_with_post_api_conversations(stack):
    async with Browser(stack) as browser:
        await browser.register_and_login(unique_email("chat"))
        async with browser.session.post(
            "/api/conversations",
            json={"title": "Through nginx"},
            headers=browser.headers(),
            allow_redirects=False,
        ) as response:
            body = await response.json()
            assert response.status == 201, body
        async with browser.session.get(
            "/api/conversations", headers=browser.headers(), allow_redirects=False
        ) as response:
            listed = await response.json()
            assert response.status == 200, listed
        assert body["id"] in json.dumps(listed)


async def read_events(response: aiohttp.ClientResponse) -> list[tuple[float, str, dict[str, Any]]]:
    """Every SSE event with the moment its last line arrived."""
    events: list[tuple[float, str, dict[str, Any]]] = []
    name, data = "message", ""
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif not line and data:
            events.append((time.monotonic(), name, json.loads(data)))
            name, data = "message", ""
    return events


@pytest.mark.parametrize("start", ["in a new chat", "in a conversation"])
async def test_answers_stream_event_by_event_through_nginx(stack, start):
    words = [f"word{i}" for i in range(40)]  # the demo model waits 40 ms before each word
    async with Browser(stack) as browser:
        await browser.register_and_login(unique_email("stream"))
        if start == "in a new chat":
            path = "/api/messages"
        else:
            async with browser.session.post(
                "/api/conversations", json={}, headers=browser.headers()
            ) as response:
                path = f"/api/conversations/{(await response.json())['id']}/messages"
        async with browser.session.post(
            path,
            json={"content": " ".join(words), "models": ["demo/echo"]},
            headers=browser.headers(),
        ) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = await read_events(response)
    names = [name for _, name, _ in events]
    assert names[0] == "prompt" and names[-1] == "end", names
    deltas = [(at, data) for at, name, data in events if name == "delta"]
    assert " ".join(words) in "".join(d["text"] for _, d in deltas)  # the echo model repeats it
    first, last = deltas[0][0], events[-1][0]
    # 40 words at 40 ms take 1.6 s; events held back by a buffer would arrive together.
    assert last - first > 1.0, f"events arrived within {last - first:.2f}s: buffered"
    assert len({round(at, 2) for at, _ in deltas}) > 10


async def next_live(socket: aiohttp.ClientWebSocketResponse, type_: str) -> dict[str, Any]:
    while True:
        event = await socket.receive_json(timeout=10)
        if event["type"] == type_:
            return dict(event)


async def test_the_live_channel_works_through_nginx_over_tls(stack):
    """The WebSocket upgrade passes nginx (wss://, this site's Origin), pings are answered, and
    an answer's charge arrives on it; the SSE fallback is not buffered either."""
    async with Browser(stack) as browser:
        await browser.register_and_login(unique_email("live"))
        async with browser.session.get("/api/wallet") as response:
            assert response.status == 200  # the wallet exists before the socket opens
        socket = await browser.session.ws_connect("/api/live", origin=stack.url)
        try:
            assert (await next_live(socket, "live.hello"))["id"] is None
            await socket.send_json({"type": "ping"})
            await next_live(socket, "pong")
            async with browser.session.post(
                "/api/messages",
                json={"content": "charge me", "models": ["demo/echo"]},
                headers=browser.headers(),
            ) as response:
                assert response.status == 200, await response.text()
                await response.read()
            changed = await next_live(socket, "wallet.changed")
            async with browser.session.get("/api/wallet") as response:
                wallet = await response.json()
            # The hold, then the charge: the last one says what the wallet says now.
            while changed["data"] != {**wallet}:
                changed = await next_live(socket, "wallet.changed")
            assert changed["data"]["reserved"] == 0
        finally:
            await socket.close()
        async with browser.session.get(
            "/api/live/sse", headers={"Accept": "text/event-stream"}
        ) as response:
            assert response.status == 200
            line = await asyncio.wait_for(response.content.readline(), 5)
            assert line.startswith(b"event: live.hello")


async def test_a_note_edited_together_works_through_nginx_over_tls(stack):
    """The collab WebSocket of a note passes nginx too (wss://, this site's Origin): the editor
    gets its hello and the note's text, and an edit from a second editor reaches it."""
    from pycrdt import Doc, Text

    from multinotes.collab import protocol

    config = (stack.prefix / "multinotes.conf").read_text()
    block = config[config.index("location ~ ^/api/documents/[^/]+/collab$") :]
    block = block[: block.index("}")]
    assert "proxy_read_timeout 1h;" in block and "proxy_send_timeout 1h;" in block

    async with Browser(stack) as browser:
        await browser.register_and_login(unique_email("collab"))
        async with browser.session.post(
            "/api/documents",
            json={"title": "Together", "content": "Hello"},
            headers=browser.headers(),
        ) as response:
            assert response.status == 201, await response.text()
            note = (await response.json())["id"]
        path = f"/api/documents/{note}/collab"
        first = await browser.session.ws_connect(path, origin=stack.url)
        second = await browser.session.ws_connect(path, origin=stack.url)
        try:
            docs = []
            for socket in (first, second):
                hello = await socket.receive_json(timeout=10)
                assert hello["type"] == "collab.hello" and hello["data"]["role"] == "owner"
                doc = Doc()
                await socket.send_bytes(protocol.sync_step1(doc.get_state()))
                while True:
                    message = await socket.receive(timeout=10)
                    if message.type != aiohttp.WSMsgType.BINARY:
                        continue
                    frame = protocol.parse(message.data)
                    if frame.kind == protocol.SYNC and frame.step == protocol.STEP2:
                        doc.apply_update(frame.payload)
                        break
                assert str(doc.get("content", type=Text)) == "Hello"
                docs.append(doc)
            before = docs[1].get_state()
            docs[1].get("content", type=Text).insert(5, " world")
            await second.send_bytes(protocol.update_frame(docs[1].get_update(before)))
            while str(docs[0].get("content", type=Text)) != "Hello world":
                message = await first.receive(timeout=10)
                if message.type == aiohttp.WSMsgType.BINARY:
                    frame = protocol.parse(message.data)
                    if frame.kind == protocol.SYNC:
                        docs[0].apply_update(frame.payload)
        finally:
            await first.close()
            await second.close()


async def upload(browser: Browser, size: int, **kwargs: Any) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("file", b"a" * size, filename="big.txt", content_type="text/plain")
    async with browser.session.post(
        "/api/files", data=form, headers=browser.headers(), **kwargs
    ) as response:
        text = await response.text()
        kind = response.headers.get("Content-Type", "")
        return response.status, json.loads(text) if "json" in kind else text


async def test_an_upload_at_the_size_limit_is_kept_and_one_over_is_refused_as_json(stack):
    async with Browser(stack) as browser:
        await browser.register_and_login(unique_email("upload"))
        status, body = await upload(browser, MAX_UPLOAD)
        assert status == 201, body
        assert body["size"] == MAX_UPLOAD
        # One byte over: nginx lets it through (26m) and the app refuses it.
        status, body = await upload(browser, MAX_UPLOAD + 1)
        assert status == 413, body
        assert body["error"]["code"] == "file_too_large"
        # Over nginx's own limit: nginx refuses it, in the app's error shape.
        status, body = await upload(browser, 27 * MiB)
        assert status == 413, body
        assert body == {
            "error": {"code": "payload_too_large", "message": "The request body is too large."}
        }


async def test_a_body_over_the_request_limit_is_refused_by_nginx_as_json(stack):
    async with Browser(stack) as browser:
        await browser.register_and_login(unique_email("big"))
        async with browser.session.post(
            "/api/conversations",
            data=b"{" + b" " * (10 * MiB) + b"}",
            headers=browser.headers({"Content-Type": "application/json"}),
        ) as response:
            assert response.status == 413
            assert response.headers["Content-Type"] == "application/json"
            body = await response.json()
        assert body["error"]["code"] == "payload_too_large"
        assert body["error"]["message"]


async def test_static_files_are_served_by_nginx_with_a_long_cache(stack):
    async with Browser(stack) as browser:
        async with browser.session.get("/login") as response:
            page = await response.text()
            assert response.status == 200
        path = re.search(r'href="(/static/css/[^"]+)"', page)
        assert path, "the login page links no stylesheet"
        url = path[1].replace("&amp;", "&")
        async with browser.session.get(url) as response:
            body = await response.read()
            assert response.status == 200
            # nginx's static location adds this; the app's own static route does not.
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        file = STATIC / url.split("?")[0].removeprefix("/static/")
        assert body == file.read_bytes()
