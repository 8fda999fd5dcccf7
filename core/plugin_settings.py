"""Per-plugin settings: bootstrapped from the environment, edited by admins, secrets encrypted.

Effective value of a field = what an admin stored, else ``MULTINOTES_PLUGINS__<PLUGIN>__<FIELD>``,
else the model's default. Secret fields (``SecretStr``) live only encrypted in ``secrets`` and are
shown masked.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import delete, select

from multinotes.db import Database
from multinotes.errors import Invalid
from multinotes.plugin_host import PluginHost
from multinotes.plugin_models import PluginSetting, Secret
from multinotes.secretbox import SecretBox, mask
from multinotes.settings import Settings


def is_secret_field(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(arg is SecretStr for arg in typing.get_args(annotation))
    return False


SCOPE_PREFIX = "plugin:"


def secret_scope(plugin: str) -> str:
    return SCOPE_PREFIX + plugin


def field_errors(exc: ValidationError, prefix: str = "") -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "body"
        message = str(err["msg"])
        # pydantic's wording for emails repeats itself; keep the helpful half.
        message = message.removeprefix("value is not a valid email address: ")
        message = message.removeprefix("Value error, ")
        fields[prefix + loc] = message
    return fields


class PluginSettingsStore:
    def __init__(self, db: Database, box: SecretBox, settings: Settings, host: PluginHost):
        self.db = db
        self.box = box
        self.settings = settings
        self.host = host
        self._cache: dict[str, BaseModel] = {}
        self._seen: dict[str, frozenset[tuple[Any, ...]]] | None = None

    def invalidate(self, plugin: str | None = None) -> None:
        if plugin is None:
            self._cache.clear()
        else:
            self._cache.pop(plugin, None)

    async def invalidate_changed(self) -> list[str]:
        """Forget the settings of plugins whose stored rows changed since the last look (rows
        added, removed or updated, by any process) and return their names.

        Each look reads which rows exist and when each was last written, not their values:
        polled every few seconds, it must not make the next request of every process decrypt
        and validate every plugin's settings again when nothing changed."""
        async with self.db.read() as session:
            rows = [
                (plugin, "setting", field, updated_at)
                for plugin, field, updated_at in await session.execute(
                    select(PluginSetting.plugin, PluginSetting.field, PluginSetting.updated_at)
                )
            ] + [
                (scope.removeprefix(SCOPE_PREFIX), "secret", name, updated_at)
                for scope, name, updated_at in await session.execute(
                    select(Secret.scope, Secret.name, Secret.updated_at).where(
                        Secret.scope.startswith(SCOPE_PREFIX)
                    )
                )
            ]
        grouped: dict[str, set[tuple[Any, ...]]] = {}
        for plugin, *rest in rows:
            grouped.setdefault(plugin, set()).add(tuple(rest))
        now = {plugin: frozenset(found) for plugin, found in grouped.items()}
        before, self._seen = self._seen, now
        if before is None:
            self.invalidate()
            return sorted(now)
        changed = sorted(p for p in before.keys() | now.keys() if before.get(p) != now.get(p))
        for plugin in changed:
            self.invalidate(plugin)
        return changed

    def _model(self, plugin: str) -> type[BaseModel] | None:
        return self.host.get(plugin).settings_model

    async def _stored(self, plugin: str) -> tuple[dict[str, Any], dict[str, Secret]]:
        async with self.db.read() as session:
            values = {
                row.field: row.value
                for row in await session.scalars(
                    select(PluginSetting).where(PluginSetting.plugin == plugin)
                )
            }
            secrets = {
                row.name: row
                for row in await session.scalars(
                    select(Secret).where(Secret.scope == secret_scope(plugin))
                )
            }
        return values, secrets

    async def config(self, plugin: str) -> BaseModel | None:
        """The plugin's settings model, filled and validated (secrets decrypted)."""
        model = self._model(plugin)
        if model is None:
            return None
        if plugin in self._cache:
            return self._cache[plugin]
        raw = await self._raw_values(plugin, model)
        try:
            instance = model.model_validate(raw)
        except ValidationError:
            # Stored values went stale against a newer model: fall back to env and defaults.
            instance = model.model_validate(self._env_values(plugin, model))
        self._cache[plugin] = instance
        return instance

    def _env_values(self, plugin: str, model: type[BaseModel]) -> dict[str, Any]:
        env = {k.lower(): v for k, v in self.settings.plugin_values(plugin).items()}
        return {name: env[name] for name in model.model_fields if name in env}

    async def _raw_values(self, plugin: str, model: type[BaseModel]) -> dict[str, Any]:
        values = self._env_values(plugin, model)
        stored, secrets = await self._stored(plugin)
        for name, field in model.model_fields.items():
            if is_secret_field(field.annotation):
                if name in secrets:
                    values[name] = self.box.decrypt(secrets[name].ciphertext)
            elif name in stored:
                values[name] = stored[name]
        return values

    async def view(self, plugin: str) -> list[dict[str, Any]]:
        """Fields for the console and the API: values of plain fields, masks of secret ones."""
        model = self._model(plugin)
        if model is None:
            return []
        stored, secrets = await self._stored(plugin)
        env = self._env_values(plugin, model)
        config = await self.config(plugin)
        fields = []
        for name, field in model.model_fields.items():
            secret = is_secret_field(field.annotation)
            entry: dict[str, Any] = {
                "name": name,
                "title": field.title or name.replace("_", " ").capitalize(),
                "description": field.description,
                "secret": secret,
                "type": _type_name(field.annotation),
            }
            current = getattr(config, name, None)
            if secret:
                plain = current.get_secret_value() if isinstance(current, SecretStr) else None
                entry["is_set"] = bool(plain)
                entry["masked"] = mask(plain) if plain else None
                entry["source"] = (
                    "admin" if name in secrets else ("env" if name in env else "default")
                )
            else:
                entry["value"] = current
                entry["source"] = (
                    "admin" if name in stored else ("env" if name in env else "default")
                )
            fields.append(entry)
        return fields

    async def update(self, plugin: str, changes: dict[str, Any]) -> None:
        """Validate and store changed fields. For a secret, ``None`` or ``""`` keeps the current
        value; ``{"clear": true}`` removes the stored one. Nothing is written if any field fails."""
        model = self._model(plugin)
        if model is None:
            raise Invalid(f"Plugin {plugin!r} has no settings.", fields={"settings": "unknown"})
        unknown = sorted(set(changes) - set(model.model_fields))
        if unknown:
            raise Invalid(
                "Unknown settings.", fields={f"settings.{n}": "unknown setting" for n in unknown}
            )
        merged = await self._raw_values(plugin, model)
        secret_writes: dict[str, str | None] = {}
        plain_writes: dict[str, Any] = {}
        for name, value in changes.items():
            if is_secret_field(model.model_fields[name].annotation):
                if isinstance(value, dict) and value.get("clear"):
                    secret_writes[name] = None
                    merged.pop(name, None)
                elif value in (None, ""):
                    continue
                elif isinstance(value, str):
                    secret_writes[name] = value
                    merged[name] = value
                else:
                    raise Invalid(fields={f"settings.{name}": "must be a string"})
            else:
                plain_writes[name] = value
                merged[name] = value
        try:
            validated = model.model_validate(merged)
        except ValidationError as exc:
            raise Invalid(
                "Some settings are invalid.", fields=field_errors(exc, "settings.")
            ) from None
        dumped = validated.model_dump(mode="json")
        async with self.db.transaction() as session:
            for name in plain_writes:
                row = await session.scalar(
                    select(PluginSetting).where(
                        PluginSetting.plugin == plugin, PluginSetting.field == name
                    )
                )
                if row is None:
                    session.add(PluginSetting(plugin=plugin, field=name, value=dumped[name]))
                else:
                    row.value = dumped[name]
            for name, secret in secret_writes.items():
                scope = secret_scope(plugin)
                await session.execute(
                    delete(Secret).where(Secret.scope == scope, Secret.name == name)
                )
                if secret is not None:
                    session.add(
                        Secret(
                            scope=scope,
                            name=name,
                            ciphertext=self.box.encrypt(secret),
                            last4=secret[-4:] if len(secret) >= 12 else "",
                        )
                    )
        self.invalidate(plugin)


def _type_name(annotation: Any) -> str:
    if annotation is bool:
        return "bool"
    if annotation in (int, float):
        return "number"
    args = typing.get_args(annotation)
    if bool in args:
        return "bool"
    if int in args or float in args:
        return "number"
    return "text"


async def rotate_all_secrets(db: Database, box: SecretBox) -> int:
    """Re-encrypt every stored secret under the newest master key. Returns how many."""
    count = 0
    async with db.transaction() as session:
        for row in await session.scalars(select(Secret)):
            row.ciphertext = box.rotate(row.ciphertext)
            count += 1
    return count
