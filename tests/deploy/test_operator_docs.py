"""Every shell block of the operator docs (README.md, deploy/README.md, docs/configuration.md)
is run by something, and says by what (deploy/drills/doc_blocks.py):

- ``docs-run: drill``: the provision drill runs it as written on a provisioned Debian 12 under
  systemd (tests/deploy/test_provision_drill.py, slow);
- ``docs-run: ci``: .ci/run runs it (its README guard names the command);
- ``docs-run: test <file>``: that test runs what it says;
- ``docs-run: variant <where>: <why>``: it needs an operator's own DNS, mail or keys; <where>
  runs the nearest variant.

A new block without a marker fails here until someone decides who runs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "drills"))
import doc_blocks  # noqa: E402

sys.path.remove(str(ROOT / "deploy" / "drills"))

BLOCKS = doc_blocks.blocks(ROOT)
IDS = [f"{b.page}:{b.line}" for b in BLOCKS]


def test_the_operator_docs_have_shell_blocks_of_each_kind():
    kinds = {b.kind for b in BLOCKS}
    assert kinds == {"drill", "ci", "test", "variant"}, kinds
    assert {b.page for b in BLOCKS} == set(doc_blocks.DOCS)


@pytest.mark.parametrize("block", BLOCKS, ids=IDS)
def test_every_block_says_who_runs_it(block):
    assert block.kind in doc_blocks.KINDS, (
        f"{block.page}:{block.line} needs a <!-- docs-run: ... --> line before it"
    )
    if block.kind == "test":
        assert (ROOT / block.argument).is_file(), block.argument
    if block.kind == "variant":
        where, _, why = block.argument.partition(": ")
        assert (ROOT / where).is_file() and why, block.argument
    if block.kind == "ci":
        # .ci/run runs exactly these (the install without the final `multinotes serve`, which
        # its wheel smoke test runs), and fails when README.md stops showing them.
        command = block.body.strip().removesuffix(" && multinotes serve")
        assert command in ci_commands(), (command, ci_commands())


def ci_commands() -> set[str]:
    ci = (ROOT / ".ci" / "run").read_text()
    values = dict(re.findall(r'^(INSTALL_CMD|DEV_CMD|TEST_CMD)="(.*)"$', ci, flags=re.M))
    assert 'grep -qF -- "$cmd" README.md' in ci
    return {values["INSTALL_CMD"], f"{values['DEV_CMD']} && {values['TEST_CMD']}"}


def test_the_drill_runs_its_blocks_and_they_are_valid_bash(tmp_path):
    drill = (ROOT / "deploy" / "drills" / "provision-drill.sh").read_text()
    assert "doc_blocks.py drill" in drill
    script = tmp_path / "blocks.sh"
    script.write_text(doc_blocks.drill_script(ROOT, {"<stamp>": "20260101T000000Z"}))
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    assert text.count("PASS docs block") == sum(b.kind == "drill" for b in BLOCKS) >= 4
    # placeholders are filled in; nothing of an operator's own choosing is left
    assert "/path/to/checkout" not in text and "<stamp>" not in text


def test_a_block_without_a_marker_is_found(tmp_path):
    (tmp_path / "deploy").mkdir()
    (tmp_path / "docs").mkdir()
    for page in doc_blocks.DOCS:
        # a marker mentioned in the prose above does not count: only the line before the block
        (tmp_path / page).write_text(
            "Say `<!-- docs-run: drill -->` before a block.\n\n```sh\nsystemctl status nginx\n```\n"
        )
    found = doc_blocks.blocks(tmp_path)
    assert [(b.page, b.line, b.kind) for b in found] == [(p, 3, "") for p in doc_blocks.DOCS]
