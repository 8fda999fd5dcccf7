"""The /integrations page: a webhook added with its secret shown once (a reload neither adds a
second one nor shows the secret again; rotating likewise), a test event sent with
the button and seen in the delivery log (the receiver verifies the signature with the
standardwebhooks library), an admin switching off someone else's webhook; accessible, and
usable on a phone."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from standardwebhooks import Webhook, WebhookVerificationError

from tests.browser.conftest import api_account, confirm
from tests.browser.test_accessibility import serious_violations


class Receiver:
    """A webhook receiver on loopback that checks each delivery's signature."""

    def __init__(self) -> None:
        self.secret = ""
        self.verified: list[dict[str, Any]] = []
        self.refused = 0

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    receiver.verified.append(
                        Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                    )
                    self.send_response(204)
                except WebhookVerificationError:
                    receiver.refused += 1
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    with found.serving() as url:
        yield found, url


def test_a_webhook_is_added_tested_and_its_delivery_logged(
    admin_page: Any, receiver: tuple[Receiver, str], screenshot: Any, page_problems: Any
) -> None:
    hook, url = receiver
    # The refused form answers 400 (the browser logs it); nothing else may go wrong.
    page_problems.allow(r"status of 400 .*/integrations/webhooks\]")
    page = admin_page
    page.goto("/usage")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()

    # A mistake is named next to its field, and what was typed stays.
    page.get_by_label("URL").fill("ftp://example.com/hooks")
    page.get_by_label("Events").fill("note.created")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#webhook-url-error")).to_contain_text("https://")
    expect(page.get_by_label("URL")).to_have_value("ftp://example.com/hooks")

    page.get_by_label("URL").fill(url)
    page.get_by_label("Events").fill("note.created, note.updated")
    page.get_by_label("Description").fill("Build server")
    page.get_by_role("button", name="Add webhook").click()
    secret = page.get_by_role("textbox", name="Signing secret").input_value()
    assert secret.startswith("whsec_")
    hook.secret = secret
    screenshot(page, "integrations-new-webhook")

    row = page.get_by_role("row").filter(has_text="Build server")
    expect(row).to_contain_text("note.created, note.updated")
    # The form redirected (post/redirect/get): a reload adds no second webhook, and the secret
    # is not shown again.
    assert page.url.split("#")[0].endswith("/integrations")
    page.reload()
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Build server")).to_have_count(1)
    expect(page.get_by_role("textbox", name="Signing secret")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(secret)  # shown once

    page.get_by_role("link", name=url).first.click()
    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_role("status").first).to_contain_text("test event is on its way")
    deadline_checks = 0
    while not hook.verified and deadline_checks < 100:
        page.wait_for_timeout(100)
        deadline_checks += 1
    assert hook.verified and hook.verified[0]["type"] == "webhook.test"
    assert hook.refused == 0

    page.get_by_role("button", name="Refresh").click()
    log = page.locator("#delivery-log")
    expect(log).to_contain_text("webhook.test · succeeded")
    expect(log).to_contain_text("HTTP 204")
    assert not serious_violations(page)
    screenshot(page, "integrations-delivery-log")

    # Rotating redirects as well: the new secret once, and a reload does not rotate again.
    page.get_by_role("button", name="Rotate secret").click()
    confirm(page, "Rotate secret")
    rotated = page.get_by_role("textbox", name="Signing secret").input_value()
    assert rotated.startswith("whsec_") and rotated != secret
    endpoint_id = page.url.split("#")[0].rsplit("/", 1)[-1]
    grace = page.request.get(f"/api/webhooks/{endpoint_id}").json()["previous_secret_until"]
    page.reload()
    expect(page.get_by_role("button", name="Send test event")).to_be_visible()
    expect(page.get_by_role("textbox", name="Signing secret")).to_have_count(0)
    assert page.request.get(f"/api/webhooks/{endpoint_id}").json()["previous_secret_until"] == grace

    page.get_by_role("button", name="Delete").click()
    confirm(page, "Delete webhook")
    expect(page.get_by_role("status").first).to_contain_text("deleted")
    expect(page.get_by_role("row").filter(has_text="Build server")).to_have_count(0)


def test_an_admin_switches_off_someone_elses_webhook_on_a_phone(
    browsing: Any, browser: Any, server: str, admin: Any, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    cleo = api_account(browser, server, "Cleo", "cleo-integrations@example.com")
    as_cleo = browsing.new_page(storage_state=cleo.storage_state, phone=True)
    as_cleo.goto("/integrations")
    as_cleo.get_by_label("URL").fill(url)
    as_cleo.get_by_label("Events").fill("note.created")
    as_cleo.get_by_role("button", name="Add webhook").click()
    expect(as_cleo.get_by_role("textbox", name="Signing secret")).to_be_visible()
    # Nothing wider than the phone's screen.
    assert as_cleo.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert not serious_violations(as_cleo)

    as_admin = browsing.new_page(storage_state=admin.storage_state, phone=True)
    as_admin.goto("/integrations")
    others = as_admin.get_by_role("region", name="Everyone else's webhooks")
    row = others.get_by_role("row").filter(has_text=url)
    row.get_by_role("button", name="Disable").click()
    expect(
        as_admin.get_by_role("region", name="Everyone else's webhooks")
        .get_by_role("row")
        .filter(has_text=url)
    ).to_contain_text("Off")

    as_cleo.goto("/integrations")
    expect(as_cleo.get_by_role("row").filter(has_text=url)).to_contain_text(
        "Off (by an administrator)"
    )
