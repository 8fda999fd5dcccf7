"""Backups: deploy/backup.sh writes one archive encrypted to the operator's age key (database,
data folder with the uploads, every stored file when they live in S3, manifest), copies it
off-site, prunes old ones and reports a failure; deploy/restore-drill.sh restores the newest
into a scratch MariaDB database and folder and checks rows, every file, a login and a search.
Against MariaDB and Redis."""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.app_process import PASSWORD, Client, free_port, serve, wait_ready
from tests.deploy.tools import need

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CANARY = "canary@example.com"


def upload(
    client: Client,
    name: str,
    data: bytes,
    *,
    path: str = "/api/files",
    field: str = "file",
    kind: str = "text/plain",
) -> Any:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"'
            f"\r\nContent-Type: {kind}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(client.url + path, data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("Cookie", client.cookie)
    request.add_header("X-CSRF-Token", client.csrf)
    request.add_header("Accept", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture
def site(production_services, tmp_path: Path) -> dict[str, Any]:
    """A production site with a canary account, a note and an uploaded file."""
    return make_site(production_services, tmp_path)


def make_site(
    production_services: dict[str, str],
    tmp_path: Path,
    more_settings: dict[str, str] | None = None,
    more_content: Callable[[Client], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from tests.conftest import _reset_production

    need("mysqldump", "mariadb-client")
    need("age", "age")
    _reset_production(production_services)
    data = tmp_path / "data"
    data.mkdir()
    settings = {
        "MULTINOTES_MODE": "production",
        "MULTINOTES_DATABASE_URL": production_services["database_url"],
        "MULTINOTES_REDIS_URL": production_services["redis_url"],
        "MULTINOTES_REDIS_PREFIX": production_services["redis_prefix"],
        "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
        "MULTINOTES_DATA_DIR": str(data),
        "MULTINOTES_ALLOWED_HOSTS": "127.0.0.1",
        "MULTINOTES_COOKIE_SECURE": "false",
        "MULTINOTES_EMAIL_VERIFICATION_REQUIRED": "false",
        "MULTINOTES_LOG_LEVEL": "WARNING",
        **(more_settings or {}),
    }
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in settings.items()))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **settings}
    proc = serve(port, data, env, tmp_path / "serve.log")
    word = f"zephyr{secrets.token_hex(3)}"
    try:
        wait_ready(url)
        client = Client(url)
        client.register_and_login(CANARY)
        client.call("POST", "/api/documents", {"title": "Canary", "content": f"The {word} note."})
        stored = upload(client, "canary.txt", b"canary bytes\n" * 100)
        more = more_content(client) if more_content else {}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    key = tmp_path / "backup-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = re.search(r"age1\w+", key.read_text()).group(0)  # type: ignore[union-attr]
    return {
        "tmp": tmp_path,
        "env_file": env_file,
        "key": key,
        "recipient": recipient,
        "word": word,
        "file": stored,
        "database": production_services["database"],
        **more,
    }


def scratch_databases_left(name: str) -> list[str]:
    found = subprocess.run(
        [
            "mysql",
            "-uroot",
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-N",
            "-e",
            f"SHOW DATABASES LIKE '{name}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.split()


def backup(site: dict[str, Any], **extra: str) -> subprocess.CompletedProcess[str]:
    tmp: Path = site["tmp"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ENV_FILE": str(site["env_file"]),
        "BACKUP_ENV_FILE": str(tmp / "no-backup-env"),
        "BACKUP_DIR": str(tmp / "backups"),
        "BACKUP_AGE_RECIPIENT": site["recipient"],
        "BACKUP_OFFSITE": str(tmp / "offsite"),
        "BACKUP_ALERT_CMD": f'printf %s "$BACKUP_ERROR" > {tmp}/alert',
        "PYTHON": sys.executable,
        **extra,
    }
    (tmp / "offsite").mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", str(DEPLOY / "backup.sh")], env=env, capture_output=True, text=True, timeout=120
    )


def restore_drill(
    site: dict[str, Any], archive: Path, database: str, tmp: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    """deploy/restore-drill.sh on ``archive`` into the scratch database ``database``, checking
    the site's canary login and search word."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ENV_FILE": str(site["env_file"]),
        "BACKUP": str(archive),
        "DRILL_DB": database,
        "DRILL_DB_URL": "mysql://root@127.0.0.1:3306/",
        "DRILL_EMAIL": CANARY,
        "DRILL_PASSWORD": PASSWORD,
        "DRILL_SEARCH": site["word"],
        "DRILL_PORT": str(free_port()),
        "PYTHON": sys.executable,
        "TMPDIR": str(tmp),
        **extra,
    }
    return subprocess.run(
        ["bash", str(DEPLOY / "restore-drill.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_backup_then_restore_drill(site, capsys):
    tmp: Path = site["tmp"]
    backups = tmp / "backups"
    backups.mkdir()
    # Two archives from a month ago and one from last week: with KEEP_MIN 3, the newest three
    # (this run's, last week's and the newer month-old one) stay, the oldest goes.
    fakes = {}
    for age_days in (40, 35, 7):
        then = time.time() - age_days * 86400
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(then))
        fake = backups / f"multinotes-{stamp}.tar.age"
        fake.write_bytes(b"old")
        os.utime(fake, (then, then))
        fakes[age_days] = fake.name

    started = time.monotonic()
    result = backup(site)
    backup_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp / "alert").exists()
    archives = {p.name for p in backups.glob("multinotes-*.tar.age")}
    assert archives - set(fakes.values()) == {max(archives)}
    this_run = max(archives)
    assert fakes[40] not in archives
    assert {fakes[35], fakes[7]} <= archives
    archive = backups / this_run
    raw = archive.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1")
    assert b"CREATE TABLE" not in raw and b"canary bytes" not in raw
    assert (tmp / "offsite" / this_run).read_bytes() == raw
    assert (backups / "last-success").exists()

    started = time.monotonic()
    drill = restore_drill(
        site, archive, f"{site['database']}_drill", tmp, AGE_IDENTITY=str(site["key"])
    )
    drill_seconds = time.monotonic() - started
    out = drill.stdout
    assert drill.returncode == 0, out + drill.stderr
    assert "[FAIL]" not in out
    assert "[PASS] row counts match the backup's manifest: all equal" in out
    assert "[PASS] files: 1 of 1 readable and intact" in out
    assert f"[PASS] login as {CANARY}" in out
    assert f"[PASS] search for '{site['word']}': 1 results" in out
    assert not scratch_databases_left(f"{site['database']}_drill")  # the drill cleans up
    with capsys.disabled():
        print(
            f"\nbackup drill: backup.sh {backup_seconds:.1f}s ({len(raw)} bytes encrypted), "
            f"restore-drill.sh {drill_seconds:.1f}s\n{out}"
        )


def test_a_backup_encrypted_to_a_gpg_key_restores(site):
    """The GPG path: an operator without age encrypts to a key in the backup user's keyring;
    the restore drill decrypts it with that keyring."""
    tmp: Path = site["tmp"]
    home = tmp / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "backups@example.com",
            "default",
            "default",
            "never",
        ],
        env={"GNUPGHOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=True,
        capture_output=True,
        timeout=120,
    )
    result = backup(
        site,
        BACKUP_AGE_RECIPIENT="",
        BACKUP_GPG_RECIPIENT="backups@example.com",
        GNUPGHOME=str(home),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (archive,) = (tmp / "backups").glob("multinotes-*.tar.gpg")
    raw = archive.read_bytes()
    assert b"CREATE TABLE" not in raw and b"canary bytes" not in raw
    assert (tmp / "offsite" / archive.name).read_bytes() == raw

    drill = restore_drill(site, archive, f"{site['database']}_gpgdrill", tmp, GNUPGHOME=str(home))
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "[FAIL]" not in drill.stdout
    assert "[PASS] files: 1 of 1 readable and intact" in drill.stdout
    assert f"[PASS] login as {CANARY}" in drill.stdout
    assert not scratch_databases_left(f"{site['database']}_gpgdrill")


def test_a_failed_backup_raises_the_alert_and_leaves_nothing_behind(site):
    tmp: Path = site["tmp"]
    broken = tmp / "broken-env"
    broken.write_text(
        site["env_file"].read_text().replace(site["database"], "no_such_database_anywhere")
    )
    result = backup(site, ENV_FILE=str(broken))
    assert result.returncode != 0
    alert = (tmp / "alert").read_text()
    assert "backup" in alert and "failed" in alert
    assert not list((tmp / "backups").glob("multinotes-*"))
    assert not list((tmp / "backups").glob(".work-*"))


def test_without_a_key_it_refuses_to_write_a_plain_backup(site):
    result = backup(site, BACKUP_AGE_RECIPIENT="")
    assert result.returncode != 0
    assert "BACKUP_AGE_RECIPIENT" in (site["tmp"] / "alert").read_text()


@pytest.fixture
def ssh_host(tmp_path: Path) -> Iterator[Path]:
    """A real sshd on a free loopback port, and an ssh client config (``Host backup-host``)
    whose key it accepts: what an operator's ``~/.ssh/config`` for the backup host holds."""
    sshd = need("sshd", "openssh-server")
    keys = tmp_path / "ssh"
    keys.mkdir(mode=0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
    port = free_port()
    (keys / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\n"
    )
    (keys / "config").write_text(
        f"Host backup-host\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {keys / 'client_key'}\n  IdentitiesOnly yes\n"
        f"  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {keys / 'known_hosts'}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(keys / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=open(keys / "sshd.log", "wb"),  # noqa: SIM115
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (keys / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not listen"
            time.sleep(0.1)
        yield keys / "config"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_off_site_copy_can_go_to_another_host_over_ssh(site, ssh_host):
    remote = site["tmp"] / "remote-host-folder"
    remote.mkdir()
    result = backup(site, BACKUP_OFFSITE=f"backup-host:{remote}", RSYNC_RSH=f"ssh -F {ssh_host}")
    assert result.returncode == 0, result.stdout + result.stderr
    (archive,) = (site["tmp"] / "backups").glob("multinotes-*.tar.age")
    assert (remote / archive.name).read_bytes() == archive.read_bytes()


@pytest.fixture
def fake_s3() -> Iterator[tuple[Any, str]]:
    """The fake S3 server in a thread of its own: backup.sh runs in another process."""
    from tests.fakes.in_thread import ServedInThread
    from tests.fakes.s3_server import FakeS3

    with ServedInThread(FakeS3()) as served:
        yield served.fake, served.url


def test_the_off_site_copy_can_go_to_an_s3_bucket(site, fake_s3):
    fake, url = fake_s3
    bucket = {
        "BACKUP_OFFSITE": f"s3://{fake.bucket}/nightly",
        "BACKUP_S3_ENDPOINT_URL": url,
        "BACKUP_S3_ACCESS_KEY": fake.access_key,
        "BACKUP_S3_SECRET_KEY": fake.secret_key,
        "BACKUP_S3_REGION": fake.region,
    }
    # The fake bucket is on loopback: like any outgoing request in production, the copy is
    # refused until the operator allows the address (as for a MinIO on the server's own network).
    refused = backup(site, **bucket)
    assert refused.returncode != 0
    assert "MULTINOTES_OUTGOING_ALLOW" in refused.stdout + refused.stderr
    assert not fake.objects

    result = backup(site, **bucket, MULTINOTES_OUTGOING_ALLOW="127.0.0.1/32")
    assert result.returncode == 0, result.stdout + result.stderr
    # The refused run kept its archive locally (only the copy failed); this run's is the newest.
    archive = max((site["tmp"] / "backups").glob("multinotes-*.tar.age"))
    assert fake.objects[f"nightly/{archive.name}"] == archive.read_bytes()


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def an_avatar_and_a_generated_image(client: Client) -> dict[str, Any]:
    """The canary (the first account: the admin) sets an avatar and has the demo provider paint
    an image: two more kinds of stored file beside the upload."""
    client.call("PATCH", "/api/admin/plugins/demo", {"enabled": True})
    avatar = upload(client, "me.png", PNG, path="/api/me/avatar", field="avatar", kind="image/png")
    with client.open_stream("teal", model="demo/swatch") as stream:
        events = stream.read().decode()
    assert "event: media" in events, events[-500:]
    return {"avatar_url": avatar["avatar_url"]}


def test_files_kept_in_s3_are_in_the_backup_and_restore(production_services, tmp_path, fake_s3):
    """With S3 storage every stored file (the upload, the avatar, the generated image) lives in
    the bucket, not in the data folder: backup.sh copies each into the archive's objects part,
    and the restore drill brings them back into a scratch folder and finds them all."""
    fake, url = fake_s3
    site = make_site(
        production_services,
        tmp_path,
        {
            "MULTINOTES_STORAGE_BACKEND": "s3",
            "MULTINOTES_S3_ENDPOINT_URL": url,
            "MULTINOTES_S3_BUCKET": fake.bucket,
            "MULTINOTES_S3_REGION": fake.region,
            "MULTINOTES_S3_ACCESS_KEY": fake.access_key,
            "MULTINOTES_S3_SECRET_KEY": fake.secret_key,
            # the fake bucket is on loopback, which production refuses unless allowed
            "MULTINOTES_OUTGOING_ALLOW": "127.0.0.1/32",
        },
        an_avatar_and_a_generated_image,
    )
    stored = dict(fake.objects)
    # the uploads (<user id>/<file id>: the canary's, and the image also kept among the files),
    # the avatar and the image as the answer's media
    kinds = [key.split("/")[0] for key in stored]
    assert kinds.count("avatars") == 1 and kinds.count("media") == 1, sorted(stored)
    uploads = len(stored) - 2
    assert uploads >= 1, sorted(stored)
    local = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and p.suffix == ".png"]
    assert not local, local  # nothing stored on this machine's disk

    result = backup(site)
    assert result.returncode == 0, result.stdout + result.stderr
    (archive,) = (tmp_path / "backups").glob("multinotes-*.tar.age")
    opened = tmp_path / "opened"
    opened.mkdir()
    decrypted = subprocess.run(
        ["age", "-d", "-i", str(site["key"]), str(archive)], capture_output=True, check=True
    )
    subprocess.run(["tar", "-C", str(opened), "-xf", "-"], input=decrypted.stdout, check=True)
    (folder,) = opened.glob("multinotes-*")
    subprocess.run(["tar", "-C", str(folder), "-xzf", str(folder / "objects.tar.gz")], check=True)
    copied = {
        str(p.relative_to(folder / "objects")): p.read_bytes()
        for p in (folder / "objects").rglob("*")
        if p.is_file()
    }
    assert copied == stored

    drill = restore_drill(
        site, archive, f"{site['database']}_s3drill", tmp_path, AGE_IDENTITY=str(site["key"])
    )
    out = drill.stdout
    assert drill.returncode == 0, out + drill.stderr
    assert "[FAIL]" not in out
    assert f"[PASS] files: {uploads} of {uploads} readable and intact" in out
    assert "[PASS] stored objects (media, avatars, exports): 2 of 2 present" in out
    assert f"[PASS] login as {CANARY}" in out
    assert not scratch_databases_left(f"{site['database']}_s3drill")
