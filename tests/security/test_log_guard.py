"""The session-wide log scan (tests/support/log_guard.py) finds what it should, and the test
helpers note the secrets a test uses."""

from __future__ import annotations

from multinotes.testing import SEEN_SECRETS, ApiClient, remember_secrets
from tests.support.log_guard import HEADER, find_leaks


def test_it_finds_tokens_as_words_and_passwords_as_substrings():
    key = "mn_" + "A1b2C3d4" * 5
    lines = [
        f"{HEADER}tests/test_x.py::test_one (call)\n",
        '{"event": "request", "path": "/verify?token=' + key + '&x=1"}\n',
        f"{HEADER}tests/test_x.py::test_two (call)\n",
        '{"event": "login", "error": "bad password: correct horse battery staple"}\n',
        '{"event": "fine", "prefix": "' + key[:10] + '"}\n',
    ]
    leaks = find_leaks(
        {key, "correct horse battery staple", "never-logged-secret-1234"},
        [("test output", lines)],
    )
    assert leaks == [
        ("tests/test_x.py::test_one (call)", key),
        ("tests/test_x.py::test_two (call)", "correct horse battery staple"),
    ]


def test_a_key_inside_a_longer_word_is_not_a_false_alarm_for_its_prefix():
    assert find_leaks({"abcdefghijklmnop"}, [("out", ["xabcdefghijklmnopx\n"])]) == []


async def test_the_helpers_note_passwords_tokens_and_keys(api: ApiClient):
    await api.register_and_login("sam@example.com", "a long sam password 9")
    created = await (await api.post("/api/keys", {"name": "k"})).json()
    assert {"a long sam password 9", created["key"], api.csrf} <= SEEN_SECRETS
    assert any(
        c.key.endswith("mn_session") and c.value in SEEN_SECRETS
        for c in api.client.session.cookie_jar
    )
    remember_secrets({"settings": {"api_key": "sk-nested-provider-key"}, "name": "plain name"})
    assert "sk-nested-provider-key" in SEEN_SECRETS and "plain name" not in SEEN_SECRETS
