"""deploy/drills/provision-drill.sh: provision.sh on a clean Debian 12 booted with systemd as
PID 1 (systemd-nspawn), then the operator's and a first user's checks through nginx, and what
the host hardening left (firewall and login jail also tried from outside the container).

It takes 10-20 minutes here (631 s on a quiet machine, 1,206 s on a busy one; debootstrap adds
2-5 minutes while its tarball is not cached; most of it is apt, pip and Python starting), so it
runs only with
``MULTINOTES_SLOW_DRILLS=1`` (as root, on a Debian 12 host with debootstrap, systemd-container
and iptables), never in the ordinary suite:

    MULTINOTES_SLOW_DRILLS=1 .venv/bin/python -m pytest tests/deploy/test_provision_drill.py -s

The transcript of a run is in deploy/README.md ("Provisioning drill").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DRILL = Path(__file__).resolve().parents[2] / "deploy" / "drills" / "provision-drill.sh"

pytestmark = pytest.mark.skipif(
    os.environ.get("MULTINOTES_SLOW_DRILLS") != "1",
    reason="slow (10-20 min): set MULTINOTES_SLOW_DRILLS=1 to run the provision drill",
)


@pytest.mark.timeout(3600)
def test_provision_on_a_clean_debian_12_under_systemd():
    if os.geteuid() != 0:
        pytest.skip("the drill boots a container: run as root")
    missing = [t for t in ("debootstrap", "systemd-nspawn", "iptables") if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing {missing} (apt-get install debootstrap systemd-container iptables)")
    env = {**os.environ, "DRILL_DIR": os.environ.get("DRILL_DIR", "/var/tmp/multinotes-drill")}
    process = subprocess.Popen(
        ["bash", str(DRILL)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=3300)
    except BaseException:
        # SIGTERM, not a kill: the drill's exit trap powers the container off and removes NAT.
        process.terminate()
        process.communicate(timeout=180)
        raise
    print(output)
    assert process.returncode == 0, output[-6000:]
    lines = output.splitlines()
    assert lines[-1] == "DRILL PASSED"
    assert not [line for line in lines if line.startswith("FAIL")]
    for check in (
        "PASS booted Debian 12",
        "PASS multinotes-web@8080.service active",
        "PASS multinotes-worker.service active",
        "PASS multinotes-scheduler.service active",
        "PASS GET /healthz through nginx (HTTPS)",
        "PASS register the first account",
        "PASS restart returned",
        "PASS every web process",
        "PASS multinotes-web@8080.service exposure",
        "PASS ufw allows only 22/tcp 443/tcp 80/tcp",
        "PASS fail2ban jails: multinotes-login, sshd",
        "PASS Redis refuses a client without the password",
        "PASS MariaDB user multinotes: its own database only",
        "PASS from the host: MariaDB, Redis and the web processes are unreachable",
        "PASS 10 refused logins from the host",
        "PASS unbanned",
        "PASS multinotes-backup.service ran under systemd",
        "PASS docs block deploy/README.md",
    ):
        assert any(line.startswith(check) for line in lines), check
