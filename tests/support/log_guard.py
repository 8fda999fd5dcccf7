"""No secret in the logs of the whole test session: no password, API key, session or CSRF
token, mailed link's token, master key or provider key that any test used.

- **What is scanned**: every test's captured output (the app logs JSON lines to stderr; stdout
  and pytest's log capture too), appended to one file while the session runs, one block per
  test phase, so a leak names its test; and the browser tests' server logs (``*-stderr.log``
  under the session's temporary directory).
- **What is looked for**: ``multinotes.testing.SEEN_SECRETS`` (the test helpers note passwords,
  tokens and keys from request and response bodies, session cookies and settings), string
  constants of the test modules named like a password, secret, token or key, and the tokens of
  the links in mailed ``.eml`` files.
- **When**: at the end of the session; a leak fails the run (exit status 1) and the summary says
  which secret (shortened) appeared in whose output.

Running with ``-s`` (nothing captured) skips the check and says so. Under pytest-xdist (``-n``)
each worker scans what its own tests printed and logged, and the controller reports the leaks of
all of them.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from multinotes.testing import SEEN_SECRETS, remember_secret

TESTS = Path(__file__).resolve().parents[1]
CONSTANT = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|^KEY)$")
LINK_TOKEN = re.compile(r"token=([A-Za-z0-9_\-]{20,})")
WORD = re.compile(r"[A-Za-z0-9_\-]+")
HEADER = "\x00LOG-GUARD "

_state: dict[str, Any] = {"file": None, "basetemp": None, "leaks": None}


def _file() -> IO[str]:
    if _state["file"] is None:
        # Open for the whole session; the OS removes it when the process ends.
        _state["file"] = tempfile.TemporaryFile(  # noqa: SIM115
            "w+", encoding="utf-8", errors="replace"
        )
    handle: IO[str] = _state["file"]
    return handle


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _is_xdist_controller(config: pytest.Config) -> bool:
    """With ``-n``, the tests (and the secrets they note) live in the worker processes: each
    worker scans its own output and logs and hands its leaks to the controller, which reports
    them all (``pytest_testnodedown``)."""
    return not _is_xdist_worker(config) and config.getoption("dist", "no") != "no"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep what this phase of the test printed (earlier phases were kept already)."""
    if _state.get("controller"):
        return  # a worker's report, forwarded: that worker keeps and scans it
    parts = [
        content
        for title, content in report.sections
        if title.startswith("Captured ") and title.endswith(f" {report.when}") and content
    ]
    if parts:
        handle = _file()
        handle.write(f"{HEADER}{report.nodeid} ({report.when})\n")
        for part in parts:
            handle.write(part if part.endswith("\n") else part + "\n")


@pytest.fixture(scope="session", autouse=True)
def _log_guard_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where the session's temporary files are (server logs, mailed .eml files)."""
    _state["basetemp"] = tmp_path_factory.getbasetemp()


def constants_of_test_modules() -> Iterator[str]:
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or TESTS not in Path(path).resolve().parents:
            continue
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and CONSTANT.search(name):
                yield value


def mailed_tokens(basetemp: Path | None) -> Iterator[str]:
    if basetemp is None or not basetemp.exists():
        return
    for path in basetemp.rglob("*.eml"):
        # Quoted-printable mail wraps long lines with "=\n": join them back first.
        text = path.read_text(errors="replace").replace("=\n", "").replace("=3D", "=")
        yield from LINK_TOKEN.findall(text)


def server_logs(basetemp: Path | None) -> Iterator[tuple[str, Path]]:
    if basetemp is None or not basetemp.exists():
        return
    for path in basetemp.rglob("*-stderr.log"):
        yield f"browser server log {path.name}", path


def find_leaks(
    secrets: Iterable[str], sources: Iterable[tuple[str, Iterable[str]]]
) -> list[tuple[str, str]]:
    """(where, secret) for every secret found in the lines of each source.

    Secrets made of token characters (keys, tokens) are matched as whole words, which a set
    lookup does fast for any number of them; the others (passwords with spaces) as
    substrings."""
    wordlike = {s for s in secrets if WORD.fullmatch(s)}
    other = [s for s in secrets if s not in wordlike]
    leaks: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for name, lines in sources:
        where = name
        for line in lines:
            if line.startswith(HEADER):
                where = line[len(HEADER) :].strip()
                continue
            found = wordlike.intersection(WORD.findall(line))
            found.update(s for s in other if s in line)
            for secret in found:
                if (where, secret) not in seen:
                    seen.add((where, secret))
                    leaks.append((where, secret))
    return leaks


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        yield from handle


def _captured() -> Iterator[str]:
    handle = _state["file"]
    if handle is None:
        return
    handle.flush()
    handle.seek(0)
    yield from handle


def pytest_configure(config: pytest.Config) -> None:
    _state["controller"] = _is_xdist_controller(config)
    _state["worker_leaks"] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """An xdist worker finished: take the leaks it found."""
    found = getattr(node, "workeroutput", {}).get("log_guard_leaks", [])
    _state["worker_leaks"].extend((where, secret) for where, secret in found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("capture") == "no":
        _state["leaks"] = None
        return
    if _state.get("controller"):
        leaks = _state["worker_leaks"]
        _state["leaks"] = leaks
        if leaks and session.exitstatus == 0:
            session.exitstatus = 1
        return
    basetemp = _state["basetemp"]
    for value in [*constants_of_test_modules(), *mailed_tokens(basetemp)]:
        remember_secret(value)
    sources: list[tuple[str, Iterable[str]]] = [("test output", _captured())]
    sources += [(name, _lines(path)) for name, path in server_logs(basetemp)]
    leaks = find_leaks(set(SEEN_SECRETS), sources)
    _state["leaks"] = leaks
    if _is_xdist_worker(session.config):
        session.config.workeroutput["log_guard_leaks"] = [list(leak) for leak in leaks]  # type: ignore[attr-defined]
    if leaks and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    leaks = _state["leaks"]
    if leaks is None:
        terminalreporter.write_line("log guard: output not captured (-s); logs not scanned")
        return
    if not leaks:
        return
    terminalreporter.section("secrets in the logs", red=True)
    for where, secret in leaks:
        shown = secret[:4] + "…" + secret[-2:] if len(secret) > 8 else "…"
        terminalreporter.write_line(f"{where}: a secret ({shown}, {len(secret)} chars)")
