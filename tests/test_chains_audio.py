"""Document workflows from audio (issue #18 item 3): an audio file's transcript, made by a
speech-to-text model through the pipeline (held, charged and saved like any answer), is the
run's ``{{input}}``; the run goes on in the transcription's conversation."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.test_chains import finished, start, upload, wav_bytes


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {"script/ears": Script(chunks=["Spoken", " words"]), "script/one": Script()}


@pytest.fixture
def plugins(scripts: dict[str, Script]) -> Any:
    ears = ScriptedModel(
        "script/ears",
        scripts["script/ears"],
        capabilities=frozenset({"speech_to_text"}),
        context_window=100_000,
        max_output=1000,
    )
    writer = ScriptedModel("script/one", scripts["script/one"], context_window=100_000)
    return [("script", ScriptedPlugin(ears, writer))]


async def test_an_audio_file_is_transcribed_into_the_runs_input(
    user: ApiClient, scripts: dict[str, Script]
):
    audio = await upload(user, wav_bytes(), "memo.wav", "audio/wav")
    response = await user.post(
        "/api/chains",
        {"title": "Memo", "steps": [{"model": "script/one", "prompt": "Tidy up: {{input}}"}]},
    )
    chain = await response.json()
    wrong = await start(user, chain["id"], status=422, file_id=audio, speech_model="script/one")
    assert wrong["error"]["fields"] == {"speech_model": "not a usable speech-to-text model"}

    run = await start(user, chain["id"], file_id=audio)
    assert run["input"] == "Spoken words" and run["file_id"] == audio
    sent = scripts["script/ears"].requests[-1].messages[-1]
    assert sent.attachments[0].media_type == "audio/wav"
    ended = await finished(user, run["id"])
    assert ended["status"] == "complete"
    assert scripts["script/one"].requests[-1].messages[-1].content == "Tidy up: Spoken words"
    conversation = await user.get_json(f"/api/conversations/{run['conversation_id']}")
    contents = [m["content"] for m in conversation["messages"]]
    assert "Spoken words" in contents and "Hello world" in contents
    assert (await user.get_json("/api/wallet"))["reserved"] == 0
