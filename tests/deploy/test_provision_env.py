"""provision.sh writes every setting `multinotes check` needs, from flags (or a terminal), keeps
its generated secrets on a re-run, and refuses to go on without a decision about mail.
Runs the script's --write-env step (no root, no packages)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from multinotes.readiness import production_checks
from multinotes.settings import Settings

PROVISION = Path(__file__).resolve().parents[2] / "deploy" / "provision.sh"


def provision(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PROVISION), *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdin=subprocess.DEVNULL,  # no terminal: nothing can be asked
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_env(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^(\w+)=['\"](.*)['\"]$", path.read_text(), re.M))


def settings_from(path: Path) -> Settings:
    values = {k.removeprefix("MULTINOTES_").lower(): v for k, v in read_env(path).items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_without_a_mail_decision_it_stops_and_says_what_to_give(tmp_path):
    result = provision("--write-env", str(tmp_path / "env"), "--domain", "notes.example.com")
    assert result.returncode != 0
    assert "--smtp-host" in result.stderr and "--no-smtp" in result.stderr
    assert not (tmp_path / "env").exists()


def test_the_settings_pass_every_static_production_check(tmp_path):
    env = tmp_path / "env"
    result = provision(
        "--write-env",
        str(env),
        "--domain",
        "notes.example.com",
        "--smtp-host",
        "smtp.example.com",
        "--smtp-user",
        "notes@example.com",
        "--smtp-from",
        "Notes <notes@example.com>",
        SMTP_PASSWORD="mail-pass-0000",
    )
    assert result.returncode == 0, result.stderr
    assert env.stat().st_mode & 0o777 == 0o640
    values = read_env(env)
    assert values["MULTINOTES_SMTP_HOST"] == "smtp.example.com"
    assert values["MULTINOTES_SMTP_PORT"] == "587"
    assert values["MULTINOTES_SMTP_USERNAME"] == "notes@example.com"
    assert values["MULTINOTES_SMTP_PASSWORD"] == "mail-pass-0000"
    assert values["MULTINOTES_MAIL_FROM"] == "Notes <notes@example.com>"
    assert values["MULTINOTES_TRUSTED_PROXIES"] == "127.0.0.1/32,::1/128"
    assert re.fullmatch(
        r"redis://:[0-9a-f]{48}@127\.0\.0\.1:6379/0", values["MULTINOTES_REDIS_URL"]
    )
    settings = settings_from(env)
    failed = [c for c in production_checks(settings) if not c.ok]
    assert failed == [], failed
    assert settings.trusted_proxies


def test_a_rerun_keeps_secrets_and_own_lines_and_takes_new_values(tmp_path):
    env = tmp_path / "env"
    first = provision("--write-env", str(env), "--domain", "a.example.com", "--no-smtp")
    assert first.returncode == 0, first.stderr
    before = read_env(env)
    assert "MULTINOTES_SMTP_HOST" not in before
    with env.open("a") as f:
        f.write('MULTINOTES_RATE_LIMIT_API="120/minute"\n')
    again = provision(
        "--write-env",
        str(env),
        "--domain",
        "b.example.com",
        "--trusted-proxies",
        "10.0.0.2/32",
        SMTP_HOST="smtp.example.com",
    )
    assert again.returncode == 0, again.stderr
    after = read_env(env)
    for key in (
        "MULTINOTES_SECRET_KEY",
        "MULTINOTES_DATABASE_URL",
        "MULTINOTES_REDIS_URL",
        "MULTINOTES_METRICS_TOKEN",
    ):
        assert after[key] == before[key], key
    assert after["MULTINOTES_ALLOWED_HOSTS"] == "b.example.com"
    assert after["MULTINOTES_PUBLIC_URL"] == "https://b.example.com"
    assert after["MULTINOTES_TRUSTED_PROXIES"] == "10.0.0.2/32"
    assert after["MULTINOTES_SMTP_HOST"] == "smtp.example.com"
    assert after["MULTINOTES_RATE_LIMIT_API"] == "120/minute"
    assert env.read_text().count("MULTINOTES_SECRET_KEY=") == 1
    # A third run with nothing new changes nothing.
    text = env.read_text()
    assert provision("--write-env", str(env), "--domain", "b.example.com").returncode == 0
    assert env.read_text().replace("Updated", "") == text


def test_values_with_quotes_and_backslashes_survive(tmp_path):
    env = tmp_path / "env"
    password = 'p"a\\s$s`w'
    result = provision(
        "--write-env",
        str(env),
        "--domain",
        "notes.example.com",
        "--smtp-host",
        "smtp.example.com",
        "--smtp-user",
        "u",
        SMTP_PASSWORD=password,
    )
    assert result.returncode == 0, result.stderr
    # Read the way systemd's EnvironmentFile and the scripts' `set -a; . env` read it.
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . "{env}"; printf %s "$MULTINOTES_SMTP_PASSWORD"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == password
