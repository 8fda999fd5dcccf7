"""Encryption of secrets at rest: MultiFernet under master keys from settings.

Each master key (any string of enough entropy) is stretched to a Fernet key with HKDF. The newest
key encrypts; every listed key decrypts, so keys rotate without downtime:
put the new key first, keep the old one in ``MULTINOTES_OLD_SECRET_KEYS``, run
``multinotes secrets rotate``, then drop the old key.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from multinotes.errors import ConfigError


def _fernet_key(master: str) -> bytes:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"multinotes-secretbox", info=b"fernet-v1"
    ).derive(master.encode())
    return base64.urlsafe_b64encode(derived)


class SecretBox:
    def __init__(self, master_keys: list[str]) -> None:
        if not master_keys:
            raise ConfigError("At least one master key is needed to encrypt secrets.")
        self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in master_keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "A stored secret cannot be decrypted with the configured master keys."
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key."""
        return self._fernet.rotate(token.encode()).decode()


def mask(value: str) -> str:
    """What a page may show of a secret: its last four characters at most."""
    tail = value[-4:] if len(value) >= 12 else ""
    return f"••••{tail}"
