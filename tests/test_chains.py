"""Chains (issue #18 item 3): steps run one after another through the generation pipeline, each
step's prompt taking the run's input and earlier answers; runs stream, stop, re-run from a step
and read their input from an uploaded document. Both runtime modes."""

from __future__ import annotations

import asyncio
import io
import wave
from datetime import timedelta
from typing import Any

import aiohttp
import docx
import pytest
from fpdf import FPDF
from sqlalchemy import func, select, update

from multinotes.chains.models import ChainRun, ChainRunStep
from multinotes.chains.runner import sweep_chain_runs
from multinotes.chat.models import Conversation, Generation, Message
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from tests.support.pages import Page, get_page
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.sse import parse_sse

SCRIPTS = {
    "script/one": Script(chunks=["Alpha", " facts"]),
    "script/two": Script(chunks=["Beta", " summary"]),
    "script/three": Script(chunks=["Gamma", " title"]),
    # Slow enough to be stopped mid-answer.
    "script/slow": Script(chunks=["slow "] * 40, delay=0.1),
}


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {
        model_id: Script(**vars(s) | {"calls": 0, "requests": []})
        for model_id, s in SCRIPTS.items()
    }


@pytest.fixture
def plugins(scripts: dict[str, Script]) -> Any:
    models = [
        ScriptedModel(model_id, script, context_window=200_000, max_output=100)
        for model_id, script in scripts.items()
    ]
    return [("script", ScriptedPlugin(*models))]


THREE_STEPS = [
    {"title": "Facts", "model": "script/one", "prompt": "List the facts in: {{input}}"},
    {"model": "script/two", "prompt": "Summarise these facts: {{step1}}"},
    {
        "model": "script/three",
        "prompt": "Title for {{step2}} (facts were {{step1}}; text {{input}})",
        "system_prompt": "Be brief.",
    },
]


async def create_chain(api: ApiClient, steps: list[dict] | None = None, **extra: Any) -> dict:
    response = await api.post(
        "/api/chains", {"title": "Digest", "steps": steps or THREE_STEPS, **extra}
    )
    body = await response.json()
    assert response.status == 201, body
    return body


async def start(api: ApiClient, chain_id: str, status: int = 201, **body: Any) -> dict:
    response = await api.post(f"/api/chains/{chain_id}/runs", body)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def follow(api: ApiClient, run_id: str) -> list[tuple[str, dict]]:
    response = await api.get(f"/api/chains/runs/{run_id}/stream")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return parse_sse(await response.text())


async def finished(api: ApiClient, run_id: str) -> dict:
    for _ in range(200):
        run = await api.get_json(f"/api/chains/runs/{run_id}")
        if run["status"] != "running":
            return run
        await asyncio.sleep(0.05)
    raise AssertionError("the run did not end")


def sent_prompt(script: Script) -> str:
    return script.requests[-1].messages[-1].content


async def test_a_three_step_chain_streams_each_step_fed_by_the_earlier_answers(
    user: ApiClient, scripts: dict[str, Script]
):
    before = (await user.get_json("/api/wallet"))["balance"]
    chain = await create_chain(user)
    assert [s["title"] for s in chain["steps"]] == ["Facts", "Step 2", "Step 3"]
    run = await start(user, chain["id"], input="The sky is blue.")
    assert run["status"] == "running" and run["steps"][0]["status"] == "running"

    events = await follow(user, run["id"])
    names = [name for name, _ in events]
    assert names[0] == "run" and names[-2:] == ["run_done", "end"]
    done = [data for name, data in events if name == "step_done"]
    assert [d["position"] for d in done] == [0, 1, 2]
    assert [d["status"] for d in done] == ["complete"] * 3
    assert "Alpha facts" in done[0]["html"] and done[2]["output"] == "Gamma title"
    streamed = "".join(d["text"] for n, d in events if n == "delta" and d["position"] == 0)
    assert streamed in ("", "Alpha facts", "facts", "Alpha", " facts")  # live, when caught
    assert events[-2][1]["status"] == "complete"

    assert sent_prompt(scripts["script/one"]) == "List the facts in: The sky is blue."
    assert sent_prompt(scripts["script/two"]) == "Summarise these facts: Alpha facts"
    assert sent_prompt(scripts["script/three"]) == (
        "Title for Beta summary (facts were Alpha facts; text The sky is blue.)"
    )
    assert scripts["script/three"].requests[-1].options.system == "Be brief."
    # Each step is a prompt on its own (no earlier turns sent along).
    assert len(scripts["script/two"].requests[-1].messages) == 1

    run = await user.get_json(f"/api/chains/runs/{run['id']}")
    assert run["status"] == "complete" and run["finished_at"]
    assert [s["output"] for s in run["steps"]] == ["Alpha facts", "Beta summary", "Gamma title"]
    assert all(s["cost"] > 0 for s in run["steps"])
    assert run["cost"] == sum(s["cost"] for s in run["steps"])
    # Saved like any chat: the run's conversation holds the three prompts and answers.
    conversation = await user.get_json(f"/api/conversations/{run['conversation_id']}")
    assert conversation["title"] == "Digest (chain)"
    contents = {m["content"] for m in conversation["messages"]}
    assert {"Alpha facts", "Beta summary", "Gamma title"} <= contents
    after = await user.get_json("/api/wallet")
    assert after["balance"] == before - run["cost"] and after["reserved"] == 0
    assert await wallet.ledger_sum(user.app[DB], user.user["id"]) == after["balance"]
    listed = await user.get_json(f"/api/chains/{chain['id']}/runs")
    assert [r["id"] for r in listed["runs"]] == [run["id"]]
    chains = await user.get_json("/api/chains")
    assert chains["chains"][0]["runs"] == 1


async def test_steps_may_only_use_the_input_and_earlier_steps(user: ApiClient):
    cases = [
        ([{"model": "script/one", "prompt": "{{step1}}"}], "steps.0.prompt", "unknown_variable"),
        (
            [
                {"model": "script/one", "prompt": "{{input}}"},
                {"model": "script/two", "prompt": "{{step3}} and {{step1}}"},
            ],
            "steps.1.prompt",
            "unknown_variable",
        ),
        ([{"model": "script/one", "prompt": "{{colour}}"}], "steps.0.prompt", "unknown_variable"),
        (
            [{"model": "script/one", "prompt": "x", "system_prompt": "{{step2}}"}],
            "steps.0.system_prompt",
            "unknown_variable",
        ),
        ([{"model": "nobody/nothing", "prompt": "{{input}}"}], "steps.0.model", "unknown_model"),
        ([{"model": "script/one", "template_id": "nope"}], "steps.0.template_id", None),
    ]
    for steps, field, code in cases:
        response = await user.post("/api/chains", {"title": "Bad", "steps": steps})
        body = await response.json()
        assert response.status == 422, body
        assert field in body["error"]["fields"], body
        if code:
            assert body["error"]["code"] == code
    late = await user.post(
        "/api/chains",
        {
            "title": "Bad",
            "steps": [
                {"model": "script/one", "prompt": "{{input}}"},
                {"model": "script/two", "prompt": "{{step2}}"},
            ],
        },
    )
    message = (await late.json())["error"]["fields"]["steps.1.prompt"]
    assert "{{step2}} is not an earlier step" in message and "{{step1}}" in message
    too_many = await user.post(
        "/api/chains",
        {"title": "Long", "steps": [{"model": "script/one", "prompt": "{{input}}"}] * 11},
    )
    assert too_many.status == 422
    assert "steps" in (await too_many.json())["error"]["fields"]
    neither = await user.post("/api/chains", {"title": "X", "steps": [{"model": "script/one"}]})
    assert neither.status == 422
    assert (await user.get_json("/api/chains"))["chains"] == []


async def test_bad_input_is_refused_before_anything_is_kept(user: ApiClient):
    chain = await create_chain(user)
    missing = await start(user, chain["id"], status=422)
    assert missing["error"]["code"] == "input_required" and "input" in missing["error"]["fields"]
    huge = await start(user, chain["id"], status=422, input="x" * 100_001)
    assert huge["error"]["code"] == "input_too_large" and "input" in huge["error"]["fields"]
    both = await start(user, chain["id"], status=422, input="a", file_id="b")
    assert "file_id" in both["error"]["fields"]
    unknown_file = await start(user, chain["id"], status=422, file_id="nope")
    assert unknown_file["error"]["fields"] == {"file_id": "no such file"}
    async with user.app[DB].read() as session:
        assert await session.scalar(select(func.count()).select_from(ChainRun)) == 0
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 0


async def test_chains_and_runs_are_their_owners_alone(user: ApiClient, make_client):
    chain = await create_chain(user)
    run = await start(user, chain["id"], input="mine")
    await finished(user, run["id"])
    other = await make_client()
    await other.register_and_login("bob@example.com")
    await other.mark_verified()
    for method, path, body in [
        ("GET", f"/api/chains/{chain['id']}", None),
        ("PATCH", f"/api/chains/{chain['id']}", {"title": "Bob's"}),
        ("DELETE", f"/api/chains/{chain['id']}", None),
        ("GET", f"/api/chains/{chain['id']}/runs", None),
        ("POST", f"/api/chains/{chain['id']}/runs", {"input": "x"}),
        ("GET", f"/api/chains/runs/{run['id']}", None),
        ("GET", f"/api/chains/runs/{run['id']}/stream", None),
        ("POST", f"/api/chains/runs/{run['id']}/cancel", None),
        ("POST", f"/api/chains/runs/{run['id']}/rerun", {"from_step": 2}),
    ]:
        response = await other.request(method, path, json=body)
        assert response.status == 404, (method, path, response.status)
    assert (await other.get_json("/api/chains"))["chains"] == []
    assert (await user.get_json(f"/api/chains/{chain['id']}"))["title"] == "Digest"


async def test_a_chain_is_changed_and_deleted_by_its_owner(user: ApiClient):
    chain = await create_chain(user)
    changed = await user.patch(
        f"/api/chains/{chain['id']}",
        {"title": "Renamed", "steps": [{"model": "script/two", "prompt": "Only {{input}}"}]},
    )
    body = await changed.json()
    assert changed.status == 200, body
    assert body["title"] == "Renamed" and len(body["steps"]) == 1
    bad = await user.patch(
        f"/api/chains/{chain['id']}", {"steps": [{"model": "script/two", "prompt": "{{step1}}"}]}
    )
    assert bad.status == 422 and "steps.0.prompt" in (await bad.json())["error"]["fields"]
    assert (await user.delete(f"/api/chains/{chain['id']}")).status == 204
    assert (await user.get(f"/api/chains/{chain['id']}")).status == 404


async def test_stop_ends_the_run_keeping_the_answers_so_far(user: ApiClient):
    chain = await create_chain(
        user,
        steps=[
            {"model": "script/one", "prompt": "{{input}}"},
            {"model": "script/slow", "prompt": "Go on from {{step1}}"},
            {"model": "script/three", "prompt": "{{step2}}"},
        ],
    )
    run = await start(user, chain["id"], input="begin")
    for _ in range(200):
        current = await user.get_json(f"/api/chains/runs/{run['id']}")
        if current["steps"][1]["status"] == "running":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stopping = await user.post(f"/api/chains/runs/{run['id']}/cancel")
    assert stopping.status == 200 and (await stopping.json())["stop_requested"] is True
    ended = await finished(user, run["id"])
    assert ended["status"] == "stopped"
    assert [s["status"] for s in ended["steps"]] == ["complete", "stopped", "skipped"]
    assert ended["steps"][1]["output"].startswith("slow")
    assert ended["steps"][1]["cost"] > 0  # what was delivered is charged
    balance = await user.get_json("/api/wallet")
    assert balance["reserved"] == 0
    # Stopping an ended run changes nothing.
    again = await user.post(f"/api/chains/runs/{run['id']}/cancel")
    assert (await again.json())["status"] == "stopped"


async def test_a_run_is_run_again_from_a_step_reusing_the_earlier_answers(
    user: ApiClient, scripts: dict[str, Script]
):
    chain = await create_chain(user)
    first = await start(user, chain["id"], input="The sky is blue.")
    await finished(user, first["id"])
    assert scripts["script/one"].calls == 1
    busy = await user.post(f"/api/chains/runs/{first['id']}/rerun", {"from_step": 9})
    assert busy.status == 422 and "from_step" in (await busy.json())["error"]["fields"]

    response = await user.post(f"/api/chains/runs/{first['id']}/rerun", {"from_step": 2})
    second = await response.json()
    assert response.status == 201, second
    assert second["rerun_of"] == first["id"] and second["start_step"] == 2
    ended = await finished(user, second["id"])
    assert ended["status"] == "complete"
    assert [s["status"] for s in ended["steps"]] == ["reused", "complete", "complete"]
    assert ended["steps"][0]["output"] == "Alpha facts" and ended["steps"][0]["cost"] == 0
    assert scripts["script/one"].calls == 1  # step 1 was not asked again
    assert scripts["script/two"].calls == 2
    assert sent_prompt(scripts["script/two"]) == "Summarise these facts: Alpha facts"
    assert ended["conversation_id"] == first["conversation_id"]
    assert ended["input"] == "The sky is blue."


async def test_a_run_that_cannot_be_paid_for_stops_cleanly(user: ApiClient):
    db, user_id = user.app[DB], user.user["id"]
    chain = await create_chain(user)
    current = await user.get_json("/api/wallet")
    await wallet.adjust(db, user_id, -current["balance"], "drain", by=None)
    refused = await start(user, chain["id"], status=402, input="x")
    assert refused["error"]["code"] == "insufficient_credits"
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ChainRun)) == 0
        assert await session.scalar(select(func.count()).select_from(Message)) == 0

    # Enough for the first step's hold only: the second's long prompt cannot be paid for.
    await wallet.adjust(db, user_id, 300, "a little", by=None)
    costly = await create_chain(
        user,
        steps=[
            THREE_STEPS[0],
            {"model": "script/two", "prompt": "Consider " + "every word " * 400 + "{{step1}}"},
            THREE_STEPS[2],
        ],
    )
    run = await start(user, costly["id"], input="x")
    ended = await finished(user, run["id"])
    assert ended["status"] == "failed" and ended["error_code"] == "insufficient_credits"
    assert [s["status"] for s in ended["steps"]] == ["complete", "failed", "skipped"]
    assert ended["steps"][0]["output"] == "Alpha facts"
    assert ended["steps"][1]["error_code"] == "insufficient_credits"
    after = await user.get_json("/api/wallet")
    assert after["balance"] >= 0 and after["reserved"] == 0
    assert after["balance"] == 300 - ended["cost"]
    assert await wallet.ledger_sum(db, user_id) == after["balance"]


def pdf_bytes(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def docx_bytes(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def wav_bytes() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 8000)
    return out.getvalue()


async def upload(api: ApiClient, data: bytes, name: str, content_type: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    response = await api.post("/api/files", data=form)
    body = await response.json()
    assert response.status == 201, body
    return body["id"]


@pytest.mark.parametrize(
    "name,content_type,make",
    [
        ("report.pdf", "application/pdf", pdf_bytes),
        (
            "report.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            docx_bytes,
        ),
        ("report.txt", "text/plain", lambda text: text.encode()),
    ],
)
async def test_a_document_workflow_reads_the_input_from_an_uploaded_file(
    user: ApiClient, scripts: dict[str, Script], name: str, content_type: str, make
):
    file_id = await upload(user, make("Quarterly revenue grew by 12 percent."), name, content_type)
    chain = await create_chain(user)
    run = await start(user, chain["id"], file_id=file_id)
    assert run["file_id"] == file_id
    assert "Quarterly revenue grew by 12 percent." in run["input"]
    ended = await finished(user, run["id"])
    assert ended["status"] == "complete"
    assert "Quarterly revenue grew by 12 percent." in sent_prompt(scripts["script/one"])


async def test_files_without_readable_text_are_refused_by_field(user: ApiClient):
    chain = await create_chain(user)
    empty_pdf = FPDF()
    empty_pdf.add_page()
    blank = await upload(user, bytes(empty_pdf.output()), "blank.pdf", "application/pdf")
    refused = await start(user, chain["id"], status=422, file_id=blank)
    assert refused["error"]["code"] == "document_empty" and "file_id" in refused["error"]["fields"]
    big = await upload(user, b"word " * 25_000, "big.txt", "text/plain")
    too_large = await start(user, chain["id"], status=422, file_id=big)
    assert too_large["error"]["code"] == "input_too_large"
    assert "file_id" in too_large["error"]["fields"]
    audio = await upload(user, wav_bytes(), "talk.wav", "audio/wav")
    no_stt = await start(user, chain["id"], status=422, file_id=audio)
    assert no_stt["error"]["code"] == "speech_to_text_unavailable"
    assert "file_id" in no_stt["error"]["fields"]


# -- the pages -------------------------------------------------------------------------------------


async def form_post(api: ApiClient, path: str, data: dict[str, str]) -> Any:
    return await api.client.post(
        path, data={"csrf_token": api.csrf or "", **data}, allow_redirects=False
    )


async def test_the_pages_make_run_stop_and_rerun_a_chain_without_javascript(
    user: ApiClient, scripts: dict[str, Script]
):
    empty = await get_page(user, "/chains")
    assert "No chains yet" in empty.html
    editor = await get_page(user, "/chains/new")
    assert editor.has_id("step-0-prompt") and editor.has_id("step-0-model")

    refused = await form_post(
        user,
        "/chains/new",
        {"title": "Digest", "step-0-model": "script/one", "step-0-prompt": "{{step2}}"},
    )
    assert refused.status == 422
    shown = Page(await refused.text())
    assert "is not an earlier step" in shown.html
    assert shown.by_id("step-0-prompt").text == "{{step2}}"

    created = await form_post(
        user,
        "/chains/new",
        {
            "title": "Digest",
            "step-0-model": "script/one",
            "step-0-prompt": "Facts of {{input}}",
            "step-1-model": "script/two",
            "step-1-prompt": "Sum up {{step1}}",
            "step-1-system": "Short.",
        },
    )
    assert created.status == 303
    chain_path = created.headers["Location"]
    chain = await user.get_json("/api" + chain_path)
    assert [s["model"] for s in chain["steps"]] == ["script/one", "script/two"]
    assert chain["steps"][1]["system_prompt"] == "Short."

    page = await get_page(user, chain_path)
    assert page.has_id("run-input") and page.has_id("run-file")
    missing = await form_post(user, f"{chain_path}/run", {"input": ""})
    assert missing.status == 422 and "the steps use {{input}}" in await missing.text()
    started = await form_post(user, f"{chain_path}/run", {"input": "the moon"})
    assert started.status == 303
    run_path = started.headers["Location"]
    assert run_path.startswith("/chains/runs/")
    run_id = run_path.rsplit("/", 1)[1]
    ended = await finished(user, run_id)
    assert ended["status"] == "complete"
    run_page = await get_page(user, run_path)
    assert run_page.by_id("step-1").attrs["data-step-status"] == "complete"
    assert "Beta summary" in run_page.by_id("step-1").text
    assert "Finished" in run_page.by_id("run-status").text

    again = await form_post(user, f"{run_path}/rerun", {"from_step": "2"})
    assert again.status == 303 and again.headers["Location"] != run_path
    second = await finished(user, again.headers["Location"].rsplit("/", 1)[1])
    assert [s["status"] for s in second["steps"]] == ["reused", "complete"]
    assert scripts["script/one"].calls == 1

    edited = await form_post(
        user,
        f"{chain_path}/edit",
        {"title": "Digest 2", "step-0-model": "script/three", "step-0-prompt": "Only {{input}}"},
    )
    assert edited.status == 303
    assert (await user.get_json("/api" + chain_path))["title"] == "Digest 2"
    listed = await get_page(user, "/chains")
    assert "Digest 2" in listed.html and "2 runs" in listed.html
    stopped = await form_post(user, f"{run_path}/cancel", {})
    assert stopped.status == 303  # an ended run: nothing changes
    deleted = await form_post(user, f"{chain_path}/delete", {})
    assert deleted.status == 303 and deleted.headers["Location"] == "/chains"
    assert (await user.get(chain_path)).status == 404


async def test_a_run_whose_process_died_is_ended_by_the_sweep(user: ApiClient):
    chain = await create_chain(user)
    run = await start(user, chain["id"], input="x")
    await finished(user, run["id"])
    db = user.app[DB]
    long_ago = utcnow() - timedelta(minutes=10)
    # As a process that died after step 2's answer leaves it: the run never moved on.
    async with db.transaction() as session:
        await session.execute(
            update(ChainRun)
            .where(ChainRun.id == run["id"])
            .values(status="running", created_at=long_ago, finished_at=None)
        )
        await session.execute(
            update(ChainRunStep)
            .where(ChainRunStep.run_id == run["id"], ChainRunStep.position == 1)
            .values(status="running")
        )
        await session.execute(
            update(ChainRunStep)
            .where(ChainRunStep.run_id == run["id"], ChainRunStep.position == 2)
            .values(status="waiting")
        )
        await session.execute(
            update(Generation)
            .where(Generation.conversation_id == run["conversation_id"])
            .values(finished_at=long_ago)
        )
    assert await sweep_chain_runs(user.app) == 1
    ended = await user.get_json(f"/api/chains/runs/{run['id']}")
    assert ended["status"] == "failed" and ended["error_code"] == "interrupted"
    assert [s["status"] for s in ended["steps"]] == ["complete", "complete", "skipped"]
    assert await sweep_chain_runs(user.app) == 0
