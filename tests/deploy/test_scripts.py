"""Every deploy script parses and passes shellcheck (sourced files followed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPTS = sorted(p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*.sh"))


def test_the_operator_scripts_are_there():
    assert {"provision.sh", "upgrade.sh", "rollback.sh", "backup.sh"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script):
    result = subprocess.run(["bash", "-n", script], cwd=DEPLOY, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_shellcheck(script):
    shellcheck = need("shellcheck", "shellcheck")
    result = subprocess.run(
        [shellcheck, "-x", "--severity=style", f"deploy/{script}"],
        cwd=DEPLOY.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
