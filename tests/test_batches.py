"""Batch runs through the HTTP API (both runtime modes): a template over the rows of a CSV on
several models in the background, with progress, results, CSV and XLSX downloads, cancel; a
batch that runs out of credits stops cleanly with nothing overdrawn; bad input is refused with
the field at fault before anything is stored; a row is never sent twice."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import aiohttp
import openpyxl
import pytest
from sqlalchemy import func, select, update

from multinotes.batches import runner
from multinotes.batches.models import Batch, BatchAnswer, BatchRow
from multinotes.db import utcnow
from multinotes.keys import DB, SETTINGS
from multinotes.providers import Pricing
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from multinotes.wallet.models import LedgerEntry, Wallet
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin

FAST, SMART = "script/fast", "script/smart"
SLOW = "script/slow"
PAINTER = "script/painter"
TEMPLATE = {
    "title": "Product blurb",
    "body": "Write a {{tone}} blurb about {{product}}.",
    "system_prompt": "You write for {{audience}}.",
    "variables": [
        {"name": "product", "type": "text"},
        {"name": "tone", "type": "choice", "options": ["warm", "dry"], "default": "warm"},
        {"name": "audience", "type": "text", "required": False},
    ],
}


@pytest.fixture
def plugins():
    pricing = Pricing(input_per_million=1_000_000, output_per_million=1_000_000)
    models = [
        ScriptedModel(FAST, Script(chunks=["Fast", " answer"]), pricing=pricing, max_output=20),
        ScriptedModel(SMART, Script(chunks=["Smart", " answer"]), pricing=pricing, max_output=20),
        ScriptedModel(
            SLOW, Script(chunks=["Slow"] * 4, delay=0.25), pricing=pricing, max_output=20
        ),
        ScriptedModel(PAINTER, Script(), capabilities=frozenset({"image_generation"})),
    ]
    return [("script", ScriptedPlugin(*models))]


async def make_template(api: ApiClient, **changes: Any) -> str:
    response = await api.post("/api/templates", {**TEMPLATE, **changes})
    body = await response.json()
    assert response.status == 201, body
    return str(body["id"])


def csv_of(count: int) -> str:
    lines = ["product,tone,sku"]
    lines += [f"Gadget {n},{'warm' if n % 2 else 'dry'},=SKU{n}" for n in range(1, count + 1)]
    return "\n".join(lines) + "\n"


async def start(api: ApiClient, status: int = 201, **body: Any) -> dict[str, Any]:
    response = await api.post("/api/batches", body)
    payload = await response.json()
    assert response.status == status, payload
    return dict(payload)


async def wait_until_ended(api: ApiClient, batch_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while True:
        batch = await api.get_json(f"/api/batches/{batch_id}")
        seen.append(batch["progress"]["remaining"])
        # Cancelled, a batch may still finish the rows it was sending.
        if batch["status"] not in ("queued", "running") and not batch["progress"]["running"]:
            assert seen == sorted(seen, reverse=True), seen  # progress never goes back
            return dict(batch)
        assert time.monotonic() < deadline, batch
        await asyncio.sleep(0.2)


async def check_wallet(api: ApiClient) -> Wallet:
    """Nothing held any more, never below zero, the balance the sum of the ledger."""
    user_id = api.user["id"]
    async with api.app[DB].read() as session:
        row = await session.get(Wallet, user_id)
    assert row is not None
    assert row.reserved == 0 and row.balance >= 0
    assert row.balance == await wallet.ledger_sum(api.app[DB], user_id)
    return row


async def usage_entries(api: ApiClient) -> int:
    async with api.app[DB].read() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    LedgerEntry.user_id == api.user["id"], LedgerEntry.kind == "usage"
                )
            )
            or 0
        )


async def set_balance(api: ApiClient, amount: int) -> None:
    current = (await api.get_json("/api/wallet"))["balance"]
    response = await api.post(
        f"/api/admin/users/{api.user['id']}/credits",
        {"amount": amount - current, "reason": "test balance"},
    )
    assert response.status == 201, await response.json()


@pytest.mark.timeout(420)
async def test_a_100_row_csv_batch_on_two_models_finishes_and_downloads_as_xlsx(user: ApiClient):
    # The full 100 rows in embedded mode; production mode (the same runner over MariaDB and
    # Redis streams, twice as slow) runs the same checks on 25 rows: still 4 runners taking
    # turns over more rows than they are, which is what the run there adds.
    n = 25 if user.app[SETTINGS].is_production else 100
    template_id = await make_template(user)
    await set_balance(user, 100_000)
    before = (await user.get_json("/api/wallet"))["balance"]
    batch = await start(
        user, template_id=template_id, models=[FAST, SMART], csv=csv_of(n), concurrency=4
    )
    assert batch["status"] in ("queued", "running", "finished")
    assert batch["columns"] == ["product", "tone", "sku"] and batch["progress"]["total"] == n

    # 2n answers: minutes on a busy machine.
    ended = await wait_until_ended(user, batch["id"], timeout=300)
    assert ended["status"] == "finished" and ended["stop_reason"] is None
    progress = ended["progress"]
    assert (progress["done"], progress["failed"], progress["remaining"]) == (n, 0, 0)
    assert progress["percent"] == 100

    # Every row's answers, each charged once; what the batch says it cost is what was spent.
    wallet_row = await check_wallet(user)
    assert progress["cost"] == before - wallet_row.balance > 0
    assert await usage_entries(user) == 2 * n
    page = await user.get_json(f"/api/batches/{batch['id']}/rows?limit=10&offset={n - 5}")
    assert page["total"] == n and [r["position"] for r in page["rows"]] == list(range(n - 4, n + 1))
    last = page["rows"][-1]
    tone = "warm" if n % 2 else "dry"
    assert last["inputs"] == {"product": f"Gadget {n}", "tone": tone, "sku": f"=SKU{n}"}
    assert last["status"] == "done"
    assert [(a["model"], a["text"], a["status"]) for a in last["answers"]] == [
        (FAST, "Fast answer", "complete"),
        (SMART, "Smart answer", "complete"),
    ]

    # The prompt each model got: the row's values in the template, and its system prompt.
    conversation = await user.get_json(f"/api/conversations/{ended['conversation_id']}")
    prompts = {m["content"] for m in conversation["messages"] if m["role"] == "user"}
    assert len(prompts) == n and f"Write a {tone} blurb about Gadget {n}." in prompts

    # XLSX: a header, then one line per row with its columns and each model's answer.
    response = await user.get(f"/api/batches/{batch['id']}/download?format=xlsx")
    assert response.status == 200
    assert response.content_type.endswith("spreadsheetml.sheet")
    assert "attachment" in response.headers["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(await response.read()))
    lines = list(book.active.iter_rows(values_only=True))
    assert lines[0][:5] == ("row", "product", "tone", "sku", "status")
    assert f"{FAST} answer" in lines[0] and f"{SMART} cost" in lines[0]
    assert len(lines) == n + 1
    first = dict(zip(lines[0], lines[1], strict=True))
    assert first["row"] == 1 and first["product"] == "Gadget 1" and first["status"] == "done"
    assert first[f"{FAST} answer"] == "Fast answer" and first[f"{SMART} answer"] == "Smart answer"
    # A value that looks like a formula stays text.
    assert first["sku"] == "=SKU1" and book.active["D2"].data_type == "s"

    # CSV: the same table; the formula-like cell is defused.
    response = await user.get(f"/api/batches/{batch['id']}/download?format=csv")
    text = (await response.read()).decode("utf-8-sig")
    assert response.status == 200 and text.splitlines()[1].startswith("1,Gadget 1,warm,'=SKU1,done")

    listed = await user.get_json("/api/batches")
    assert [b["id"] for b in listed["batches"]] == [batch["id"]]
    template = await user.get_json(f"/api/templates/{template_id}")
    assert template["use_count"] == 1


async def test_a_batch_with_too_few_credits_stops_cleanly_with_nothing_overdrawn(user: ApiClient):
    template_id = await make_template(user)
    # Enough for a few rows on two models (each answer holds its prompt and 20 tokens).
    await set_balance(user, 300)
    batch = await start(
        user, template_id=template_id, models=[FAST, SMART], csv=csv_of(30), concurrency=2
    )
    ended = await wait_until_ended(user, batch["id"])
    assert ended["status"] == "stopped" and "credits ran out" in ended["stop_reason"]
    progress = ended["progress"]
    assert progress["done"] >= 1 and progress["skipped"] >= 1 and progress["failed"] == 0
    assert progress["done"] + progress["skipped"] == 30 and progress["remaining"] == 0

    rows = (await user.get_json(f"/api/batches/{batch['id']}/rows?limit=100"))["rows"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert all(r["note"] == "skipped: insufficient credits" and r["answers"] == [] for r in skipped)
    # A row is charged whole or not at all: every done row has both answers, each paid.
    done = [r for r in rows if r["status"] == "done"]
    assert all(len(r["answers"]) == 2 and all(a["cost"] > 0 for a in r["answers"]) for r in done)
    assert await usage_entries(user) == 2 * len(done)

    wallet_row = await check_wallet(user)
    assert wallet_row.balance == 300 - progress["cost"]


async def test_cancel_stops_the_rows_not_sent_and_settles_what_ran(user: ApiClient):
    template_id = await make_template(user)
    await set_balance(user, 100_000)
    batch = await start(user, template_id=template_id, models=[SLOW], csv=csv_of(20), concurrency=1)
    deadline = time.monotonic() + 30
    while (await user.get_json(f"/api/batches/{batch['id']}"))["progress"]["done"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    response = await user.post(f"/api/batches/{batch['id']}/cancel")
    cancelled = await response.json()
    assert response.status == 200, cancelled
    assert cancelled["status"] == "cancelled"
    ended = await wait_until_ended(user, batch["id"])
    progress = ended["progress"]
    assert ended["status"] == "cancelled" and progress["remaining"] == 0
    assert progress["cancelled"] >= 15 and progress["done"] + progress["cancelled"] == 20
    await check_wallet(user)
    # Cancelling again changes nothing.
    again = await (await user.post(f"/api/batches/{batch['id']}/cancel")).json()
    assert again["status"] == "cancelled" and again["progress"] == progress


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"csv": "tone,sku\nwarm,1\n"}, "columns.product", "missing_columns"),
        ({"csv": "product,tone\nA,warm\nB,loud\n"}, "rows.2.tone", "invalid_values"),
        ({"csv": "product\nA\n\nB\n" + "x" * 20_001 + "\n"}, "rows.3", "row_too_large"),
        ({"csv": ""}, "csv", "csv_empty"),
        ({"csv": "product,product\nA,B\n"}, "columns.product", "csv_malformed"),
        ({"csv": "product\nA,extra\n"}, "rows.1", "csv_malformed"),
        ({"csv": "product,tone\n"}, "rows", "no_rows"),
        ({"rows": [{"product": "A"}, {"product": ""}]}, "rows.2.product", "invalid_values"),
        ({"rows": [{"product": "A"}], "models": ["script/nope"]}, "models.0", "invalid"),
        ({"rows": [{"product": "A"}], "models": [FAST, FAST]}, "models", "invalid"),
        ({"rows": [{"product": "A"}], "models": [FAST, PAINTER]}, "models.1", "invalid"),
        ({"rows": [{"product": "A"}], "csv": "product\nA\n"}, "body", "invalid"),
        ({"rows": [{"product": "A"}], "concurrency": 99}, "concurrency", "invalid"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    user: ApiClient, body: dict[str, Any], field: str, code: str
):
    template_id = await make_template(user)
    before = await user.get_json("/api/wallet")
    refused = await start(user, 422, **{"template_id": template_id, "models": [FAST], **body})
    assert refused["error"]["code"] == code, refused
    assert field in refused["error"]["fields"], refused
    assert (await user.get_json("/api/batches"))["batches"] == []
    assert await user.get_json("/api/wallet") == before


async def test_a_row_over_the_size_limit_is_named(user: ApiClient):
    template_id = await make_template(user)
    rows = [{"product": "fine"}] * 4 + [{"product": "y" * 20_001}]
    refused = await start(user, 422, template_id=template_id, models=[FAST], rows=rows)
    assert refused["error"]["fields"] == {"rows.5": "At most 20000 characters in a row."}
    assert "Row 5" in refused["error"]["message"]


async def test_a_csv_file_upload_starts_a_batch(user: ApiClient):
    template_id = await make_template(user)
    form = aiohttp.FormData()
    form.add_field("template_id", template_id)
    form.add_field("models", FAST)
    form.add_field("models", SMART)
    form.add_field("concurrency", "3")
    data = "\ufeffproduct;tone\nKettle;warm\nToaster;dry\n".encode()
    form.add_field("file", data, filename="rows.csv", content_type="text/csv")
    response = await user.post("/api/batches/upload", data=form)
    batch = await response.json()
    assert response.status == 201, batch
    assert batch["columns"] == ["product", "tone"] and batch["concurrency"] == 3
    ended = await wait_until_ended(user, batch["id"])
    assert ended["progress"]["done"] == 2

    form = aiohttp.FormData()
    form.add_field("template_id", template_id)
    form.add_field("models", FAST)
    form.add_field("file", b"tone\nwarm\n", filename="rows.csv", content_type="text/csv")
    refused = await (await user.post("/api/batches/upload", data=form)).json()
    assert "columns.product" in refused["error"]["fields"]

    # A body that is not the multipart it claims to be: the client's 400, naming the field.
    broken = await user.post(
        "/api/batches/upload",
        data=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    body = await broken.json()
    assert broken.status == 400 and "file" in body["error"]["fields"], body


async def test_someone_elses_batch_and_template_are_not_found(user: ApiClient, make_client):
    template_id = await make_template(user)
    batch = await start(user, template_id=template_id, models=[FAST], rows=[{"product": "A"}])
    await wait_until_ended(user, batch["id"])
    stranger: ApiClient = await make_client()
    await stranger.register_and_login("stranger@example.com")
    await stranger.mark_verified()
    for path in ("", "/rows", "/download?format=xlsx"):
        assert (await stranger.get(f"/api/batches/{batch['id']}{path}")).status == 404
    assert (await stranger.post(f"/api/batches/{batch['id']}/cancel")).status == 404
    assert (await stranger.get_json("/api/batches"))["batches"] == []
    refused = await start(
        stranger, 404, template_id=template_id, models=[FAST], rows=[{"product": "A"}]
    )
    assert refused["error"]["code"] == "template_not_found"


async def test_two_runners_of_one_batch_never_send_a_row_twice(user: ApiClient):
    """A task delivered twice (or started again by the sweep while the first still runs):
    rows are claimed by a conditional update, so each is sent, and charged, once."""
    template_id = await make_template(user)
    await set_balance(user, 100_000)
    batch = await start(
        user, template_id=template_id, models=[FAST, SMART], csv=csv_of(30), concurrency=3
    )
    await asyncio.gather(
        runner.run_batch(user.app, batch_id=batch["id"]),
        runner.run_batch(user.app, batch_id=batch["id"]),
    )
    ended = await wait_until_ended(user, batch["id"])
    assert ended["progress"]["done"] == 30
    assert await usage_entries(user) == 60
    async with user.app[DB].read() as session:
        answers = await session.scalar(
            select(func.count()).where(BatchAnswer.batch_id == batch["id"])
        )
    assert answers == 60
    await check_wallet(user)


async def test_the_sweep_ends_a_row_whose_runner_died_without_sending_it_again(user: ApiClient):
    template_id = await make_template(user)
    batch = await start(user, template_id=template_id, models=[FAST], rows=[{"product": "A"}])
    await wait_until_ended(user, batch["id"])
    db = user.app[DB]
    long_ago = utcnow() - runner.CLAIM_LOST_AFTER - runner.ABANDONED_AFTER
    # As a runner leaves it when its process dies between claiming a row and holding credits.
    async with db.transaction() as session:
        await session.execute(
            update(Batch)
            .where(Batch.id == batch["id"])
            .values(status="running", finished_at=None, heartbeat_at=long_ago)
        )
        await session.execute(
            update(BatchRow)
            .where(BatchRow.batch_id == batch["id"])
            .values(status="running", claimed_at=long_ago)
        )
        await session.execute(
            BatchAnswer.__table__.delete().where(BatchAnswer.batch_id == batch["id"])
        )
    spent = await usage_entries(user)
    assert await runner.sweep_batches(user.app) == 1
    ended = await wait_until_ended(user, batch["id"])
    rows = (await user.get_json(f"/api/batches/{batch['id']}/rows"))["rows"]
    assert rows[0]["status"] == "failed" and rows[0]["note"] == runner.INTERRUPTED
    assert ended["status"] == "finished" and ended["progress"]["failed"] == 1
    assert await usage_entries(user) == spent  # not sent (nor charged) again
    await check_wallet(user)


async def test_a_batch_is_in_the_owners_data_export(user: ApiClient):
    from tests.test_privacy import download, finished_export, read_json

    template_id = await make_template(user)
    batch = await start(
        user, template_id=template_id, models=[FAST], rows=[{"product": "Lamp", "tone": "dry"}]
    )
    await wait_until_ended(user, batch["id"])
    export = await (await user.post("/api/me/export")).json()
    done = await finished_export(user, export["id"])
    archive = await download(user, done["download_url"])
    assert [b["id"] for b in read_json(archive, "batches.json")] == [batch["id"]]
    assert read_json(archive, "batch_rows.json")[0]["inputs"] == {"product": "Lamp", "tone": "dry"}
    answers = read_json(archive, "batch_answers.json")
    assert [(a["model_id"], a["text"]) for a in answers] == [(FAST, "Fast answer")]


async def test_the_pages_start_a_batch_show_its_progress_and_cancel_it(user: ApiClient):
    template_id = await make_template(user)
    page = await user.get("/batches")
    html = await page.text()
    assert page.status == 200 and 'id="batch-form"' in html and template_id in html

    # Refused: the form comes back with the field named and what was typed kept.
    form = {
        "csrf_token": user.csrf,
        "template_id": template_id,
        "models": FAST,
        "rows": "tone\nwarm\n",
        "concurrency": "1",
    }
    refused = await user.client.post("/batches", data=form, allow_redirects=False)
    html = await refused.text()
    assert refused.status == 422 and "columns.product" in html and "tone\nwarm" in html

    form["rows"] = csv_of(3)
    started = await user.client.post("/batches", data=form, allow_redirects=False)
    assert started.status == 303, await started.text()
    location = started.headers["Location"]
    batch_id = location.rsplit("/", 1)[1]
    await wait_until_ended(user, batch_id)
    page = await user.get(location)
    html = await page.text()
    assert page.status == 200 and "3 done" in html and "0 remaining" in html
    assert 'id="batch-progress-bar" value="3" max="3"' in html
    assert "Fast answer" in html and "download?format=xlsx" in html
    status = await user.get(f"{location}/status")
    part = await status.text()
    assert status.status == 200 and "hx-get" not in part.split(">", 1)[0]  # ended: no polling

    form["rows"] = csv_of(30)
    form["models"] = SLOW
    started = await user.client.post("/batches", data=form, allow_redirects=False)
    location = started.headers["Location"]
    status = await user.get(f"{location}/status")
    assert status.status == 200, (location, await status.text())
    assert 'hx-trigger="every 2s, batch-progress"' in await status.text()
    cancelled = await user.client.post(
        f"{location}/cancel", data={"csrf_token": user.csrf}, allow_redirects=False
    )
    assert cancelled.status == 303
    ended = await wait_until_ended(user, location.rsplit("/", 1)[1])
    assert ended["status"] == "cancelled"
