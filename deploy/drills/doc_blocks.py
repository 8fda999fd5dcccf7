"""The shell blocks of the operator docs, and who runs each of them.

Every ```sh block in the operator docs (``DOCS``) carries a marker on the line before it:

``<!-- docs-run: drill -->``
    deploy/drills/provision-drill.sh runs it as written on the provisioned container, in the
    order of the page, after replacing the placeholders in ``PLACEHOLDERS`` (paths an operator
    chooses). These are the commands that need a real server (systemd, nginx, the app user).
``<!-- docs-run: ci -->``
    .ci/run runs it (its README guard fails when the block changes).
``<!-- docs-run: test tests/<file>.py -->``
    that test runs it, or runs exactly what it does against local servers.
``<!-- docs-run: variant <where>: <why> -->``
    it cannot run as written anywhere but on an operator's machine (their DNS, mail server,
    keys); <where> runs the nearest variant and <why> says what differs.

tests/deploy/test_operator_docs.py fails when a block has no marker or a marker it does not
know. Standard library only: the drill runs this on the container with Debian's python3.

    python3 doc_blocks.py drill CHECKOUT [PLACEHOLDER=VALUE ...]   # the drill's blocks as a script
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

#: Pages for operators, relative to the checkout.
DOCS = ("README.md", "deploy/README.md", "docs/configuration.md")

#: What the drill puts in place of an operator's own choices.
PLACEHOLDERS = {
    "/path/to/checkout": "/root/multinotes",
}

BLOCK = re.compile(
    # the marker is the whole line right before the fence (one mentioned in prose is not)
    r"(?:<!--[ \t]*docs-run:[ \t]*(?P<marker>[^\n]*?)[ \t]*-->[ \t]*\n)?"
    r"```(?P<lang>sh|bash|shell|console)\n"
    r"(?P<body>.*?)```",
    flags=re.S,
)
KINDS = ("drill", "ci", "test", "variant")

#: Commands whose exit status informs rather than fails, as the drill runs them: a line that
#: starts with the key runs under the wrapper (defined in ``PREAMBLE``).
INFORMATIONAL = {
    # 3: some matching unit is inactive, such as the backup service between two runs.
    "systemctl status ": "status_shown",
    # A log that follows never ends: read it for 3 seconds.
    "journalctl ": "follow_briefly",
}
PREAMBLE = """\
status_shown() { "$@" || [ $? = 3 ]; }
follow_briefly() { case " $* " in *" -f "*) timeout 3 "$@" || [ $? = 124 ] ;; *) "$@" ;; esac; }
failed=0
"""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    marker: str
    body: str

    @property
    def kind(self) -> str:
        return self.marker.split(None, 1)[0] if self.marker else ""

    @property
    def argument(self) -> str:
        parts = self.marker.split(None, 1)
        return parts[1] if len(parts) > 1 else ""

    def for_drill(self, values: dict[str, str] | None = None) -> str:
        body = self.body
        for placeholder, value in {**PLACEHOLDERS, **(values or {})}.items():
            body = body.replace(placeholder, value)
        lines = []
        for line in body.splitlines():
            wrapper = next((w for start, w in INFORMATIONAL.items() if line.startswith(start)), "")
            lines.append(f"{wrapper} {line}" if wrapper else line)
        return "\n".join(lines) + "\n"


def blocks(root: Path) -> list[Block]:
    found = []
    for page in DOCS:
        text = (root / page).read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("lang")) + 1
            found.append(Block(page, line, match.group("marker") or "", match.group("body")))
    return found


def drill_script(root: Path, values: dict[str, str] | None = None) -> str:
    """The drill's blocks as one script: each announced, run in a subshell with -e, and
    counted; the script's exit code is the number of blocks that failed. ``values`` replace
    more placeholders (what only the running drill knows, such as a backup's ``<stamp>``)."""
    parts = [PREAMBLE]
    for block in blocks(root):
        if block.kind != "drill":
            continue
        where = f"{block.page}:{block.line}"
        parts.append(
            f"echo '--- {where}'\n"
            f"if ( set -Eeuo pipefail; cd /root\n{block.for_drill(values)}) ; then\n"
            f"  echo 'PASS docs block {where}'\n"
            f"else\n  echo 'FAIL docs block {where}'; failed=$((failed + 1))\nfi"
        )
    parts.append("exit $failed")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "drill" or not all("=" in a for a in sys.argv[3:]):
        sys.exit(__doc__.split("\n\n")[-1])
    extra = dict(a.split("=", 1) for a in sys.argv[3:])
    sys.stdout.write(drill_script(Path(sys.argv[2]), extra))
