"""Core passes without the optional plugins: when the SDK only one provider plugin needs is not
installed (``pip install multinotes`` without ``[gemini]`` or ``[together]``), that plugin is
reported as failed with the missing module, and the app still starts, lists the rest and answers
a chat with the demo provider.

The SDKs are hidden from a fresh interpreter by a meta-path finder that refuses to import them,
as an environment without them would; nothing is uninstalled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: The SDK each optional provider plugin needs (its extra in pyproject.toml).
OPTIONAL_SDKS = {"gemini": "google.genai", "together": "together"}

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    BLOCKED = {tuple(OPTIONAL_SDKS.values())!r}

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
)

APP_RUN = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path

    from multinotes.app import create_app
    from multinotes.testing import app_client, embedded_settings

    async def main():
        app = create_app(embedded_settings(Path(sys.argv[1])))  # the installed entry points
        async with app_client(app) as api:
            await api.register_admin()
            plugins = await api.get_json("/api/admin/plugins")
            models = await api.get_json("/api/models")
            conversation = (await (await api.post("/api/conversations", {})).json())["id"]
            answer = await api.post(
                f"/api/conversations/{conversation}/messages",
                {"content": "Hello there", "models": ["demo/echo"]},
            )
            stream = await answer.text()
        print(json.dumps({
            "plugins": {p["name"]: [p["status"], p["error"]] for p in plugins},
            "models": sorted(m["id"] for m in models),
            "answer_status": answer.status,
            "stream": stream,
            "modules": sorted(m for m in sys.modules if m.startswith(("together", "google.genai"))),
        }))

    asyncio.run(main())
    """
)


def run_without_sdks(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MULTINOTES_LOG_LEVEL": "CRITICAL",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_the_blocker_really_hides_the_sdks():
    result = run_without_sdks("import together")
    assert result.returncode != 0 and "No module named 'together'" in result.stderr


def test_the_app_starts_and_chats_without_the_optional_sdks(tmp_path: Path):
    result = run_without_sdks(APP_RUN, str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    for plugin in OPTIONAL_SDKS:
        status, error = seen["plugins"][plugin]
        assert status == "failed", (plugin, status)
        assert f"pip install 'multinotes[{plugin}]'" in error, (plugin, error)
    assert seen["plugins"]["demo"][0] == "loaded"
    assert seen["plugins"]["openai"][0] == "loaded"  # its SDK is a core dependency
    assert "demo/echo" in seen["models"]
    assert not [m for m in seen["models"] if m.startswith(("gemini/", "together/"))]
    assert seen["answer_status"] == 200
    assert "You asked: Hello there" in "".join(
        json.loads(line[len("data:") :]).get("text", "")
        for line in seen["stream"].splitlines()
        if line.startswith("data:") and '"text"' in line
    )
    assert seen["modules"] == []


def test_plugins_list_reports_what_is_missing(tmp_path: Path):
    code = "from multinotes.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    data = str(tmp_path / "data")
    assert run_without_sdks(code, "migrate", "--data-dir", data).returncode == 0
    result = run_without_sdks(code, "plugins", "list", "--data-dir", data)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for plugin in OPTIONAL_SDKS:
        [index] = [i for i, line in enumerate(lines) if line.split()[:1] == [plugin]]
        assert lines[index].split()[1] == "failed"
        assert f"pip install 'multinotes[{plugin}]'" in lines[index + 1]
    assert [line.split()[1] for line in lines if line.split()[:1] == ["demo"]] == ["enabled"]
