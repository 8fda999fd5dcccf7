"""The whole JSON API under schemathesis: generated requests from /api/openapi.json, valid and
invalid, against the running app, as an admin with a session cookie (CSRF token sent) and as a
plain user with a Bearer key. No request may end in a server error, and every answer must match
the schema the document declares for it.

Bounded and deterministic (a fixed seed, few examples per operation), so the run takes a couple
of minutes per mode. A failure prints schemathesis's report with a curl line to replay each case.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from multinotes.http.openapi import build_openapi
from multinotes.testing import ApiClient

ROOT = Path(__file__).resolve().parent.parent
ST = Path(sys.executable).with_name("st")
#: Each generating phase tries at most this many cases per operation.
MAX_EXAMPLES = 10
SEED = 20261206
#: Logging out and ending every session (API keys too) would end the run's own credentials;
#: tests/test_sessions.py covers both.
EXCLUDED_OPERATIONS = ("api_logout", "api_sessions_revoke_all")
#: /readyz answers 503 by design when no worker or scheduler is alive, as beside this test app
#: in production mode (the readiness tests cover it). /api/live/sse streams until the client
#: leaves, so every case would end in the request timeout (tests/test_live.py covers it).
#: Slack's and Discord's endpoints take only requests their service signed, and answer 401 to
#: every other, as Slack and Discord require (a 401 here would read as the run's credentials
#: failing); tests/test_slack.py and tests/test_discord.py cover forged and stale signatures.
EXCLUDED_PATHS = (
    "/readyz",
    "/api/live/sse",
    "/api/integrations/slack/events",
    "/api/integrations/discord/interactions",
)


@pytest.fixture
def settings(make_settings: Any) -> Any:
    # The fuzzer sends thousands of requests from one address.
    return make_settings(rate_limits_enabled=False)


async def test_the_openapi_document_is_valid(api: ApiClient):
    served = await api.get_json("/api/openapi.json")
    validate(served)
    assert served == json.loads(json.dumps(build_openapi(api.app)))
    avatar = served["paths"]["/avatars/{avatar_id}.png"]["get"]
    assert avatar["parameters"] == [
        {
            "name": "avatar_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        }
    ]
    upload = served["paths"]["/api/me/avatar"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["required"] == ["avatar"]


async def run_schemathesis(api: ApiClient, headers: dict[str, str], protected: list[str]) -> str:
    """Schemathesis's report; "" when it found nothing wrong."""
    server = api.client.server
    url = f"http://{server.host}:{server.port}/api/openapi.json"
    args = [
        str(ST),
        "run",
        url,
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--generation-with-security-parameters",
        "false",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--max-failures",
        "50",
        "--no-color",
        "--output-truncate",
        "false",
    ]
    for operation in EXCLUDED_OPERATIONS:
        args += ["--exclude-operation-id", operation]
    for path in EXCLUDED_PATHS:
        args += ["--exclude-path", path]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
        "MN_FUZZ_PROTECTED_IDS": ",".join(protected),
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:  # the test timed out or was cancelled: stop fuzzing
            process.kill()
            await process.wait()
    report = output.decode(errors="replace")
    # The run's credentials must hold to the end (a plain user's 403s from admin routes are
    # fine): a run that only collected 401s tested nothing.
    if process.returncode != 0 or "401 Unauthorized (" in report:
        return report[-40_000:]
    return ""


@pytest.mark.long
@pytest.mark.slow  # two schemathesis processes, about two minutes
@pytest.mark.timeout(900)  # minutes on a loaded machine
async def test_no_generated_request_is_a_server_error(api: ApiClient, make_client: Any):
    admin = api
    await admin.register_admin()
    await admin.mark_verified()
    me = await admin.get_json("/api/me")
    session = next(s for s in await admin.get_json("/api/sessions") if s["current"])
    cookies = "; ".join(f"{c.key}={c.value}" for c in admin.client.session.cookie_jar)
    assert admin.csrf is not None

    user = await make_client()
    await user.register_and_login("fuzz@example.com")
    await user.mark_verified()
    created = await (await user.post("/api/keys", {"name": "fuzzer"})).json()
    user_id = (await user.get_json("/api/me"))["id"]
    user.use_key(created["key"])

    # Both at once: the machine's cores are better used than by one fuzzer waiting on the app.
    as_admin, as_key_user = await asyncio.gather(
        run_schemathesis(
            admin,
            {"Cookie": cookies, "X-CSRF-Token": admin.csrf},
            [me["id"], session["id"]],
        ),
        run_schemathesis(
            admin, {"Authorization": f"Bearer {created['key']}"}, [user_id, created["id"]]
        ),
    )
    assert as_admin == "", "as the admin with a session cookie:\n" + as_admin
    assert as_key_user == "", "as a user with a Bearer key:\n" + as_key_user


async def test_each_operation_names_the_key_scopes_it_needs(api: ApiClient):
    paths = (await api.get_json("/api/openapi.json"))["paths"]
    assert paths["/api/documents"]["get"]["x-api-key-scopes"] == ["read"]
    assert paths["/api/documents"]["post"]["x-api-key-scopes"] == ["notes"]
    assert paths["/api/documents/{id}/rerun"]["post"]["x-api-key-scopes"] == ["chat"]
    assert paths["/api/admin/users"]["get"]["x-api-key-scopes"] == ["admin"]
    assert paths["/api/keys"]["post"]["x-api-key-scopes"] == ["read", "notes", "chat"]
    assert "403" in paths["/api/documents"]["post"]["responses"]
    assert "x-api-key-scopes" not in paths["/api/auth/login"]["post"]
