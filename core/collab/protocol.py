"""The frames of a collaborative editing session: the y-websocket wire format (what Yjs clients
speak), so the browser uses y-protocols as it comes.

Every binary frame is ``varuint kind`` then its payload:

- ``0`` sync: ``varuint step`` (0: step 1, a state vector; 1: step 2, an update answering one;
  2: an update) then ``varbytes``;
- ``1`` awareness: ``varbytes`` holding ``varuint count`` and, per client, ``varuint clientID``,
  ``varuint clock``, ``varstring state`` (JSON, ``null`` when the client left).

Text frames are JSON control messages of ours (``collab.hello``, ``collab.saved``, ``error``; see
docs/live.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any


def crdt() -> ModuleType:
    """pycrdt (~2.5 MB), imported by the first room that opens, not with the app: a process
    where nobody edits a note together does not carry it (issue #17)."""
    import pycrdt

    return pycrdt


# The y-websocket numbers (y-protocols' ``messageSync``/``messageAwareness`` and sync steps;
# pycrdt's ``YMessageType``/``YSyncMessageType``, which tests/test_collab.py compares).
SYNC = 0
AWARENESS = 1
STEP1 = 0
STEP2 = 1
UPDATE = 2
#: An update that changes nothing (what a client with no edits answers a step 1 with).
EMPTY_UPDATE = b"\x00\x00"


class Malformed(ValueError):
    """A frame that is not the y-websocket format."""


@dataclass(frozen=True)
class Frame:
    kind: int  # SYNC or AWARENESS
    step: int | None  # for SYNC: STEP1, STEP2 or UPDATE
    payload: bytes


def parse(data: bytes) -> Frame:
    try:
        decoder = crdt().Decoder(data)
        kind = decoder.read_var_uint()
        if kind == SYNC:
            step = decoder.read_var_uint()
            payload = decoder.read_message()
            if step not in (STEP1, STEP2, UPDATE) or payload is None:
                raise Malformed("unknown sync step")
            return Frame(kind, step, payload)
        if kind == AWARENESS:
            payload = decoder.read_message()
            if payload is None:
                raise Malformed("empty awareness frame")
            return Frame(kind, None, payload)
    except Malformed:
        raise
    except Exception as exc:  # the decoder's own errors (truncated varints, ...)
        raise Malformed(str(exc)) from exc
    raise Malformed("unknown message kind")


def sync_step1(state_vector: bytes) -> bytes:
    return bytes([SYNC, STEP1]) + crdt().write_message(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes([SYNC, STEP2]) + crdt().write_message(update)


def update_frame(update: bytes) -> bytes:
    return crdt().create_update_message(update)


@dataclass
class ClientState:
    """One Yjs client's awareness entry: its clock and state (None once it left)."""

    client_id: int
    clock: int
    state: dict[str, Any] | None


def read_awareness(payload: bytes) -> list[ClientState]:
    try:
        decoder = crdt().Decoder(payload)
        count = decoder.read_var_uint()
        if count > 1000:
            raise Malformed("too many awareness entries")
        entries = []
        for _ in range(count):
            client_id = decoder.read_var_uint()
            clock = decoder.read_var_uint()
            raw = decoder.read_var_string()
            state = json.loads(raw)
            if state is not None and not isinstance(state, dict):
                raise Malformed("awareness state must be an object or null")
            entries.append(ClientState(client_id, clock, state))
        return entries
    except Malformed:
        raise
    except Exception as exc:
        raise Malformed(str(exc)) from exc


def awareness_frame(entries: list[ClientState]) -> bytes:
    pycrdt = crdt()
    encoder = pycrdt.Encoder()
    encoder.write_var_uint(len(entries))
    for entry in entries:
        encoder.write_var_uint(entry.client_id)
        encoder.write_var_uint(entry.clock)
        encoder.write_var_string(json.dumps(entry.state, separators=(",", ":")))
    return pycrdt.create_awareness_message(encoder.to_bytes())
