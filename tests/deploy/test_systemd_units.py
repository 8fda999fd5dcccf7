"""The systemd units are hardened: `systemd-analyze security` rates each at most 4.0
(exposure), read offline from the unit files as shipped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import need

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNITS = [
    "multinotes-web@.service",
    "multinotes-worker.service",
    "multinotes-scheduler.service",
    "multinotes-backup.service",
]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_is_at_most_four(unit):
    analyze = need("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", unit],
        cwd=SYSTEMD,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 4.0, result.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_unit_runs_as_the_app_user_without_privileges(unit):
    text = (SYSTEMD / unit).read_text()
    assert "\nUser=multinotes\n" in text
    assert "\nNoNewPrivileges=true\n" in text
    assert "\nCapabilityBoundingSet=\n" in text
    assert "\nProtectSystem=strict\n" in text
