"""Browser tests: the real server in a subprocess, driven by Debian's chromium via playwright.

The sync playwright API is used from plain (sync) test functions, so pytest-asyncio's loop never
runs in the same thread. One server and one browser serve the whole session; every test gets a
fresh context and page. Every page records console errors, uncaught exceptions and failed
requests (a CSP violation shows up as a console error), and the test fails if any happened that
the test did not announce with ``page_problems.allow(...)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-results"
PASSWORD = "correct horse battery staple"
ADMIN_NAME = "Ada Admin"
ADMIN_EMAIL = "ada@example.com"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# -- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


_TEMPLATE: dict[str, Path] = {}


def _migrated_database() -> Path:
    """An empty SQLite database at the head revision (every installed plugin's too), made once
    per test process: each server starts on a copy, so its startup upgrade finds nothing to do
    instead of running every revision again (it still checks, as on any start)."""
    if "path" not in _TEMPLATE:
        import atexit
        import shutil
        import tempfile
        import threading

        from multinotes.db import create_engine
        from multinotes.migrations import upgrade

        folder = Path(tempfile.mkdtemp(prefix="multinotes-browser-template-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "multinotes.db"

        async def migrate() -> None:
            engine = create_engine(f"sqlite+aiosqlite:///{path}")
            await upgrade(engine)
            await engine.dispose()

        # A thread of its own: sync playwright may run an event loop in this one already.
        failures: list[BaseException] = []
        thread = threading.Thread(target=lambda: _run_catching(migrate, failures))
        thread.start()
        thread.join()
        if failures:
            raise failures[0]
        _TEMPLATE["path"] = path
    return _TEMPLATE["path"]


def _run_catching(coroutine: Any, failures: list[BaseException]) -> None:
    import asyncio

    try:
        asyncio.run(coroutine())
    except BaseException as exc:
        failures.append(exc)


@contextlib.contextmanager
def running_server(data_dir: Path) -> Iterator[str]:
    """``multinotes serve`` on a free port with a fresh data dir; yields its base URL."""
    import shutil

    port = _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "multinotes.db").exists():
        shutil.copy(_migrated_database(), data_dir / "multinotes.db")
    env = {
        **os.environ,
        "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "MULTINOTES_LOG_LEVEL": "WARNING",
        # Argon2 at full cost is ~0.1-1.5 s of CPU per registration and login, and the browser
        # tests sign hundreds of people up and in (the cost has its own tests:
        # tests/test_password_hash_cost.py).
        "MULTINOTES_PASSWORD_HASH_COST": "test",
        # Every browser test module signs its people up and in from 127.0.0.1 against this one
        # server, faster than the per-IP limits allow on a quiet machine. The limits have their
        # own tests (tests/test_rate_limits.py); per-account limits stay as shipped.
        "MULTINOTES_RATE_LIMIT_AUTH": "1000/minute",
        "MULTINOTES_RATE_LIMIT_LOGIN_IP": "5000/hour",
        "MULTINOTES_RATE_LIMIT_REGISTER_IP": "5000/hour",
    }
    stderr_path = data_dir.parent / f"{data_dir.name}-stderr.log"
    with open(stderr_path, "w+b") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "multinotes.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            # A fresh data dir runs every migration first: on a loaded machine (the suite's
            # other workers) that alone took over 30 s.
            deadline = time.monotonic() + 90
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    stderr.seek(0)
                    output = stderr.read().decode(errors="replace")
                    pytest.fail(
                        f"The server did not start (exit code {proc.poll()}):\n{output}",
                        pytrace=False,
                    )
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def server_with_fake_notion(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, str]]:
    """A fresh app whose Notion plugin talks to a fake Notion: (the fake, the app's URL)."""
    from multinotes.plugins.exports.notion.tests.fakes.fake_notion import FakeNotion
    from tests.fakes.in_thread import ServedInThread

    fake = FakeNotion()
    with ServedInThread(fake) as notion:
        monkeypatch.setenv("MULTINOTES_PLUGINS__NOTION__CLIENT_ID", fake.client_id)
        monkeypatch.setenv("MULTINOTES_PLUGINS__NOTION__CLIENT_SECRET", fake.client_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__NOTION__API_BASE", notion.url)
        monkeypatch.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(data_dir) as url:
            yield fake, url


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a server shared by the session (by each xdist worker's session).

    Its first account, hence its administrator, is made before any test sees the server: the
    ``admin`` fixture then only logs in. Which tests a worker runs first depends on how many
    workers there are, so an administrator made on first use was not always the first account.
    """
    with running_server(tmp_path_factory.mktemp("server") / "data") as url:
        register = urllib.request.Request(
            f"{url}/api/auth/register",
            data=json.dumps(
                {"name": ADMIN_NAME, "email": ADMIN_EMAIL, "password": PASSWORD}
            ).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(register, timeout=60) as response:
            assert response.status == 201
        yield url


@pytest.fixture
def fresh_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A server with an empty database, for tests that need to be the first user."""
    with running_server(tmp_path / "data") as url:
        yield url
        # The test's pages would go on polling (the bell) a server that is going away.
        browsing = request.node.funcargs.get("browsing")
        if browsing is not None:
            browsing.close()


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (install Debian's chromium package)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """Console errors, page exceptions and failed requests seen on every page of a test."""

    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect problems matching ``pattern`` (e.g. the console line a 404 page produces)."""
        self.allowed.append(re.compile(pattern))

    def watch(self, page: Any) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.seen.append(f"uncaught exception: {exc}"))
        page.on("requestfailed", self._on_request_failed)

    def _on_request_failed(self, request: Any) -> None:
        # ERR_ABORTED is a request that a navigation cancelled (the favicon of a page being
        # left, say); a blocked or broken request fails with another code.
        if request.failure != "net::ERR_ABORTED":
            self.seen.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def _on_console(self, message: Any) -> None:
        if message.type in ("error", "warning") and (
            message.type == "error" or "Content Security Policy" in message.text
        ):
            location = message.location.get("url", "")
            self.seen.append(f"console {message.type}: {message.text} [{location}]")

    def unexpected(self) -> list[str]:
        return [p for p in self.seen if not any(a.search(p) for a in self.allowed)]


class Browsing:
    """Opens contexts (desktop or phone, optionally logged in) whose pages are all watched."""

    def __init__(self, browser: Any, base_url: str, problems: PageProblems) -> None:
        self.browser = browser
        self.base_url = base_url
        self.problems = problems
        self.contexts: list[Any] = []

    def new_page(
        self,
        *,
        phone: bool = False,
        storage_state: Any = None,
        base_url: str | None = None,
        javascript: bool = True,
    ) -> Any:
        """A page in a context of its own; ``javascript=False`` for a browser with scripts off."""
        options: dict[str, Any] = {
            "base_url": base_url or self.base_url,
            "viewport": PHONE if phone else DESKTOP,
            "storage_state": storage_state,
            "java_script_enabled": javascript,
        }
        if phone:
            options.update(device_scale_factor=2, is_mobile=True, has_touch=True)
        context = self.browser.new_context(**options)
        context.set_default_timeout(10_000)
        context.on("page", self.problems.watch)
        self.contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def browsing(browser: Any, server: str, page_problems: PageProblems) -> Iterator[Browsing]:
    session = Browsing(browser, server, page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


@pytest.fixture
def page(browsing: Browsing) -> Any:
    """A fresh, anonymous desktop page on the shared server."""
    return browsing.new_page()


def wait_for_js(page: Any, expression: str, arg: Any = None, timeout: float = 15.0) -> Any:
    """Wait until ``expression`` (a JS expression or function, maybe async) is truthy.

    Playwright's ``wait_for_function`` polls by ``eval`` inside the page, which the app's
    Content Security Policy (no 'unsafe-eval') refuses as soon as the first check is false.
    ``page.evaluate`` goes through the DevTools protocol, which the policy does not cover.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression} ({value!r})")
        page.wait_for_timeout(100)


def confirm(page: Any, action: str) -> str:
    """Answers the page's confirmation dialog (app.js opens it for ``data-confirm``) with its
    button named ``action``, or "Cancel"; returns the question it asked."""
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_be_visible()
    question: str = dialog.locator("#confirm-message").inner_text()
    dialog.get_by_role("button", name=action, exact=True).click()
    return question


# -- accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    name: str
    email: str
    password: str
    storage_state: dict[str, Any]
    #: The session's CSRF token, for API writes made with ``storage_state``.
    csrf: str = ""

    def post(self, browser: Any, base_url: str, path: str, data: dict[str, Any]) -> str:
        """Create something over the JSON API as this account; the new object's id."""
        context = browser.new_context(base_url=base_url, storage_state=self.storage_state)
        try:
            made = context.request.post(path, headers={"X-CSRF-Token": self.csrf}, data=data)
            assert made.status == 201, made.text()
            return str(made.json()["id"])
        finally:
            context.close()


def api_account(browser: Any, base_url: str, name: str, email: str) -> Account:
    """Register and log in over the JSON API; returns the logged-in cookie jar."""
    return api_login(browser, base_url, name, email, register=True)


def api_login(
    browser: Any, base_url: str, name: str, email: str, *, register: bool = False
) -> Account:
    """Log in over the JSON API (registering first if asked); returns the logged-in cookie jar."""
    context = browser.new_context(base_url=base_url)
    try:
        if register:
            registered = context.request.post(
                "/api/auth/register", data={"name": name, "email": email, "password": PASSWORD}
            )
            assert registered.status == 201, registered.text()
        logged_in = context.request.post(
            "/api/auth/login", data={"email": email, "password": PASSWORD}
        )
        assert logged_in.ok, logged_in.text()
        csrf = str(logged_in.json()["csrf_token"])
        return Account(name, email, PASSWORD, context.storage_state(), csrf)
    finally:
        context.close()


@pytest.fixture(scope="session")
def admin(browser: Any, server: str) -> Account:
    """The first account on the shared server (made by ``server``), hence its administrator."""
    return api_login(browser, server, ADMIN_NAME, ADMIN_EMAIL)


@pytest.fixture
def admin_page(browsing: Browsing, admin: Account) -> Any:
    return browsing.new_page(storage_state=admin.storage_state)


@pytest.fixture
def screenshot() -> Any:
    """``screenshot(page, name)`` keeps a full-page picture in test-results/ (git-ignored);
    ``full_page=False`` keeps the viewport only, for a page hundreds of screens tall."""

    def take(page: Any, name: str, *, full_page: bool = True) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        # A picture for people to look at, never an assertion: 30 s for a busy machine.
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, timeout=30_000)

    return take


@pytest.fixture
def sign_up() -> Any:
    """``sign_up(page, name, email, password=PASSWORD)`` fills and submits /register, then logs
    in (registration answers every address alike, so it never logs in by itself)."""

    def fill(page: Any, name: str, email: str, password: str = PASSWORD) -> None:
        page.goto("/register")
        page.get_by_label("Name").fill(name)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Create account").click()
        page.wait_for_load_state()
        if not page.url.endswith("/login"):
            return  # the form was refused: the test looks at its errors
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()

    return fill
