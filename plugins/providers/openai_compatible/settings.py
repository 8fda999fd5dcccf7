"""Settings of the OpenAI-compatible plugin: named connections, and their keys kept encrypted.

Plugin settings are flat fields an admin edits in a form (or sets from the environment), so the
connections are one JSON text field, validated here into typed ``Connection`` objects, and the
keys are one secret field holding a JSON object ``{connection name: key}``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

EXAMPLE = (
    '[{"name": "ollama", "base_url": "http://127.0.0.1:11434/v1"}, '
    '{"name": "openrouter", "base_url": "https://openrouter.ai/api/v1", '
    '"models": ["meta-llama/llama-3.1-8b-instruct"], '
    '"prices": {"input_per_million": 2000, "output_per_million": 5000}}]'
)


Capability = Literal["text", "code", "vision"]


def _text_only() -> list[Capability]:
    return ["text"]


class Prices(BaseModel):
    """Credits per million tokens (1 credit = US$0.00001) for every model of a connection."""

    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(default=0.0, ge=0)
    output_per_million: float = Field(default=0.0, ge=0)


class Connection(BaseModel):
    """One server. Without ``models`` its models are discovered from ``GET /models``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")
    base_url: str = Field(pattern=r"^https?://\S+$")
    models: list[str] = Field(default_factory=list)
    context_window: int = Field(default=8192, ge=1)
    max_output: int = Field(default=4096, ge=1)
    prices: Prices = Field(default_factory=Prices)
    capabilities: list[Capability] = Field(default_factory=_text_only)
    #: Older servers only read ``max_tokens``; OpenAI itself prefers ``max_completion_tokens``.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


_CONNECTIONS = TypeAdapter(list[Connection])
_KEYS = TypeAdapter(dict[str, str])


def _readable(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def parse_connections(text: str) -> list[Connection]:
    """The connections in ``text`` (a JSON list), or ``ValueError`` saying what is wrong."""
    try:
        connections = _CONNECTIONS.validate_json(text.strip() or "[]")
    except ValidationError as exc:
        raise ValueError(f"not a valid list of connections ({_readable(exc)})") from None
    names = [c.name for c in connections]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"connection names must be unique: {', '.join(duplicates)}")
    return connections


def parse_keys(text: str) -> dict[str, str]:
    """The keys in ``text`` (a JSON object). The error never repeats the text: it is secret."""
    try:
        return _KEYS.validate_json(text.strip() or "{}")
    except ValidationError:
        raise ValueError(
            'must be a JSON object of connection name to key, like {"openrouter": "sk-or-..."}'
        ) from None


class CompatibleSettings(BaseModel):
    # Errors must never repeat what was typed: the keys field is secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    connections: str = Field(
        default="[]",
        title="Connections",
        description=(
            "A JSON list of servers: name, base_url (ending in /v1), and optionally models, "
            "context_window, max_output, prices (credits per million tokens), capabilities. "
            f"Example: {EXAMPLE}"
        ),
    )
    api_keys: SecretStr | None = Field(
        default=None,
        title="API keys",
        description='A JSON object of connection name to key, e.g. {"openrouter": "sk-or-..."}.',
    )

    _connections: list[Connection] = PrivateAttr(default_factory=list)
    _keys: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("connections", "api_keys", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        """The environment loader decodes JSON-looking values; store them as the text they were."""
        return json.dumps(value) if isinstance(value, list | dict) else value

    @field_validator("connections")
    @classmethod
    def _valid_connections(cls, value: str) -> str:
        parse_connections(value)
        return value

    @field_validator("api_keys")
    @classmethod
    def _valid_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_keys(value.get_secret_value())
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._connections = parse_connections(self.connections)
        self._keys = parse_keys(self.api_keys.get_secret_value()) if self.api_keys else {}

    def connection_list(self) -> list[Connection]:
        return list(self._connections)

    def connection(self, name: str) -> Connection | None:
        return next((c for c in self._connections if c.name == name), None)

    def key_for(self, name: str) -> str | None:
        return self._keys.get(name) or None
