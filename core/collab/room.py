"""Rooms: one shared Yjs document per note being edited, in each web process that has someone
editing it, kept equal across processes through the store and the bus.

A room is opened when its first person connects: from the store when the note's editing state
there matches the note's saved version, otherwise seeded from the note's Markdown. Seeding is
deterministic (the text inserted by a client id derived from the note and its version), so two
processes seeding the same version at once produce the same document, not the text twice.

What a person sends goes through ``Room.receive``: sync messages answer their state vector and
take their updates (never a viewer's: those are refused), awareness (cursors, names) is relayed
with the name and colour replaced by who they really are. Every accepted update is sent to the
room's other people here, appended to the store and published on the bus; the other processes
apply it and pass it to their people.

The room writes the merged text to the note through the notes service after a pause in editing
(``IDLE`` seconds without an update, at most every ``MAX_WAIT`` seconds while the editing goes
on, and when the last person leaves): one version per pause, with its history entry, search
indexing and ``note.updated`` event like any save.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog

from multinotes.bus import Bus
from multinotes.collab import protocol
from multinotes.collab.protocol import ClientState, Malformed
from multinotes.collab.store import Store
from multinotes.db import Database
from multinotes.errors import NotFound
from multinotes.notes import service as notes
from multinotes.sharing import access

if TYPE_CHECKING:
    from pycrdt import Doc

log = structlog.get_logger(__name__)

#: The bus channel: ``{"note", "from", "update"}`` (base64 Yjs update), ``{"note", "from",
#: "awareness"}`` (base64 awareness payload) or ``{"note", "from", "saved", "digest"}``.
CHANNEL = "collab"
#: Seconds without an update after which the room saves.
IDLE = 2.0
#: Seconds at most between saves while the editing goes on.
MAX_WAIT = 30.0
#: Seconds between a process's looks at its rooms (saves due, its "open" marks).
TICK = 0.25
#: Seconds between refreshes of a room's "open" mark in the store.
MARK_EVERY = 5.0
#: Seconds between re-checks of everyone's access, besides the one after any access change.
RECHECK = 30.0
#: The most characters a note holds: the same as a REST save (``api.documents.MAX_CONTENT``).
MAX_CONTENT = 1_000_000
#: Log entries after which a save compacts the stored log into one update.
COMPACT_AFTER = 200
#: Frames waiting for one slow connection before it is dropped (it reconnects and syncs):
#: about 20 s of twenty people typing (each keystroke is an update and a cursor frame).
QUEUE_SIZE = 4096
#: Frames one connection may send: a burst of ``BURST``, then ``RATE`` a second (a fast typist
#: sends ~10 a second; awareness adds as many).
BURST = 200
RATE = 60.0

#: WebSocket close codes (the client stops reconnecting on these).
ACCESS_LOST = 4403
NOTE_GONE = 4404

COLOURS = (
    "#1f6feb",
    "#b35900",
    "#8250df",
    "#1a7f37",
    "#cf222e",
    "#0969da",
    "#9a6700",
    "#bf3989",
)

Role = Literal["owner", "editor", "viewer"]


def colour_of(user_id: str) -> str:
    return COLOURS[int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % len(COLOURS)]


def seed_client(note_id: str, version: int) -> int:
    """The client id the seed text is inserted by: the same in every process for one version."""
    digest = hashlib.sha256(f"{note_id}:{version}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


Outgoing = bytes | dict[str, Any] | tuple[int, str] | None


@dataclass(eq=False)  # compared by identity: one per connection
class Peer:
    """One connection in a room: what it may do, and its outgoing frames (bytes: binary,
    dict: a JSON control message, (code, reason): close, None: the end)."""

    user_id: str
    name: str
    role: Role
    outbox: asyncio.Queue[Outgoing] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    #: The Yjs client ids this connection announced in its awareness (removed when it goes).
    clients: dict[int, int] = field(default_factory=dict)
    allowance: tuple[float, float] = (float(BURST), 0.0)
    #: Never more than a viewer, whatever the note's sharing says (an API key that may only read).
    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def can_edit(self) -> bool:
        return self.role != "viewer"

    def offer(self, item: Outgoing) -> None:
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.end()

    def end(self, code: int | None = None, reason: str = "") -> None:
        while not self.outbox.empty():
            self.outbox.get_nowait()
        self.outbox.put_nowait((code, reason) if code is not None else None)

    def spend(self) -> bool:
        now = time.monotonic()
        tokens, counted = self.allowance
        tokens = min(float(BURST), tokens + (now - counted) * RATE)
        if tokens < 1:
            self.allowance = (tokens, now)
            return False
        self.allowance = (tokens - 1, now)
        return True


def error_message(code: str, message: str, **fields: str) -> dict[str, Any]:
    return {"type": "error", "data": {"code": code, "message": message, "fields": fields}}


class Room:
    """One note being edited, in this process."""

    def __init__(self, rooms: Rooms, note_id: str, owner_id: str, version: int) -> None:
        self.rooms = rooms
        self.note_id = note_id
        self.owner_id = owner_id
        pycrdt = protocol.crdt()
        self.doc: Doc = pycrdt.Doc()
        self.text = self.doc.get("content", type=pycrdt.Text)
        #: The version the document was seeded from (tabs of another epoch start afresh).
        self.epoch = version
        #: The note's version the room's text was last written as (or read from).
        self.version = version
        self.saved_text = ""
        self.peers: set[Peer] = set()
        self.awareness: dict[int, ClientState] = {}
        self.dirty_since: float | None = None
        self.last_change = 0.0
        self.last_editor: str | None = None
        self.saving = asyncio.Lock()
        self.marked = 0.0
        self.checked = time.monotonic()

    # -- opening ---------------------------------------------------------------------------------

    async def load(self, content: str) -> None:
        """Start from the store when it holds this note's editing state at its current version,
        else seed from ``content`` (the note's text at ``self.version``)."""
        store = self.rooms.store
        snapshot = await store.load(self.note_id)
        if snapshot is not None and snapshot.saved == self.version:
            self.epoch = snapshot.base
            self.doc.apply_update(_merge(snapshot.updates))
            self.saved_text = content
            if str(self.text) != content:  # edits the last room did not write yet
                self._changed(None)
            return
        pycrdt = protocol.crdt()
        seed: Doc[Any] = pycrdt.Doc(client_id=seed_client(self.note_id, self.version))
        seed.get("content", type=pycrdt.Text).insert(0, content)
        update = seed.get_update()
        self.doc.apply_update(update)
        self.epoch = self.version
        self.saved_text = content
        await store.seed(self.note_id, self.version, update)

    def hello(self, peer: Peer) -> dict[str, Any]:
        return {
            "type": "collab.hello",
            "data": {
                "note_id": self.note_id,
                "epoch": self.epoch,
                "version": self.version,
                "role": peer.role,
                "user": {"id": peer.user_id, "name": peer.name, "color": colour_of(peer.user_id)},
            },
        }

    def join(self, peer: Peer) -> None:
        """``peer`` gets the hello, the server's state vector (sync step 1: it answers with what
        the room lacks) and everyone's cursors."""
        self.peers.add(peer)
        peer.offer(self.hello(peer))
        peer.offer(protocol.sync_step1(self.doc.get_state()))
        present = [entry for entry in self.awareness.values() if entry.state is not None]
        if present:
            peer.offer(protocol.awareness_frame(present))

    async def leave(self, peer: Peer) -> None:
        self.peers.discard(peer)
        gone = [
            ClientState(client_id, clock + 1, None) for client_id, clock in peer.clients.items()
        ]
        for entry in gone:
            self.awareness.pop(entry.client_id, None)
        if gone:
            await self._share_awareness(gone, origin=peer)

    # -- what a connection sends -----------------------------------------------------------------

    async def receive(self, peer: Peer, data: bytes) -> None:
        if not peer.spend():
            peer.offer(
                error_message(
                    "rate_limited", "Too many messages: slow down.", frame="At most ~60 a second."
                )
            )
            return
        try:
            frame = protocol.parse(data)
        except Malformed:
            peer.offer(
                error_message(
                    "bad_frame", "Not a y-websocket frame.", frame="sync or awareness, binary"
                )
            )
            return
        if frame.kind == protocol.SYNC:
            if frame.step == protocol.STEP1:
                try:
                    peer.offer(protocol.sync_step2(self.doc.get_update(frame.payload)))
                except Exception:
                    peer.offer(error_message("bad_frame", "Unreadable state vector."))
                return
            await self._take_update(peer, frame.payload)
        else:
            await self._take_awareness(peer, frame.payload)

    async def control(self, peer: Peer, raw: str) -> None:
        """A JSON message: ``{"type": "collab.save"}`` saves now (Ctrl+S) instead of after the
        pause."""
        try:
            kind = json.loads(raw).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind != "collab.save":
            peer.offer(error_message("unknown_type", "Unknown message.", type="collab.save"))
        elif not peer.spend():
            peer.offer(error_message("rate_limited", "Too many messages: slow down."))
        elif not peer.can_edit:
            peer.offer(error_message("read_only", "You can read this note but not edit it."))
        else:
            try:
                await self.save()
            except Exception:
                log.exception("collab_save_failed", note_id=self.note_id)
                peer.offer(error_message("save_failed", "Not saved yet; it is retried."))
                self._changed(None)

    async def _take_update(self, peer: Peer, update: bytes) -> None:
        if update == protocol.EMPTY_UPDATE:
            return
        if not peer.can_edit:
            peer.offer(
                error_message(
                    "read_only",
                    "You can read this note but not edit it: your change was not applied.",
                    update="Viewers cannot send edits.",
                )
            )
            return
        try:
            too_large = self._would_exceed(update)
        except Exception:
            too_large = None
        if too_large:
            peer.offer(
                error_message(
                    "too_large",
                    f"A note holds at most {MAX_CONTENT:,} characters: this change would make it "
                    "longer, so it was not applied. Remove some text and try again.",
                    content=f"At most {MAX_CONTENT} characters.",
                )
            )
            return
        try:
            if too_large is None:
                raise ValueError("unreadable")
            self.doc.apply_update(update)
        except Exception:
            peer.offer(error_message("bad_frame", "Unreadable update: it was not applied."))
            return
        # Passed on even when the state vector did not move: a deletion changes only the
        # delete set, and the others need it all the same (applying an update twice is a no-op).
        self._changed(peer.user_id)
        self._fan_out(protocol.update_frame(update), origin=peer)
        await self.rooms.share(self.note_id, {"update": _b64(update)})
        try:
            await self.rooms.store.append(self.note_id, update)
        except Exception as exc:  # Redis away: the processes still relay on the bus
            log.warning("collab_store_failed", error=f"{type(exc).__name__}")

    def _would_exceed(self, update: bytes) -> bool:
        """Whether applying ``update`` would make the note longer than ``MAX_CONTENT``
        characters (the limit of a REST save). An update adds at most as many characters as it
        has bytes, and the text's length in UTF-8 bytes is at least its length in characters,
        so a keystroke far from the limit is let through without a look; near it, or for a big
        update, it is tried on a copy of the document first (a CRDT update cannot be undone)."""
        if len(self.text) + len(update) <= MAX_CONTENT:
            return False
        pycrdt = protocol.crdt()
        trial: Doc = pycrdt.Doc()
        trial.apply_update(self.doc.get_update())
        trial.apply_update(update)
        return len(str(trial.get("content", type=pycrdt.Text))) > MAX_CONTENT

    async def _take_awareness(self, peer: Peer, payload: bytes) -> None:
        try:
            entries = protocol.read_awareness(payload)
        except Malformed:
            peer.offer(error_message("bad_frame", "Unreadable awareness update."))
            return
        accepted = []
        for entry in entries:
            owner = self._awareness_owner(entry.client_id)
            if owner is not None and owner is not peer:
                continue  # another connection's client id: not this one's to change
            if entry.state is not None:
                # Who it is comes from the connection, never from what the client says.
                entry.state["user"] = {
                    "id": peer.user_id,
                    "name": peer.name,
                    "color": colour_of(peer.user_id),
                    "role": peer.role,
                }
                peer.clients[entry.client_id] = entry.clock
                self.awareness[entry.client_id] = entry
            else:
                peer.clients.pop(entry.client_id, None)
                self.awareness.pop(entry.client_id, None)
            accepted.append(entry)
        if accepted:
            await self._share_awareness(accepted, origin=peer)

    def _awareness_owner(self, client_id: int) -> Peer | None:
        for peer in self.peers:
            if client_id in peer.clients:
                return peer
        return None

    async def _share_awareness(self, entries: list[ClientState], origin: Peer | None) -> None:
        frame = protocol.awareness_frame(entries)
        self._fan_out(frame, origin=origin)
        await self.rooms.share(self.note_id, {"awareness": _b64(frame)})

    def _fan_out(self, frame: bytes, origin: Peer | None) -> None:
        for other in list(self.peers):
            if other is not origin:
                other.offer(frame)

    def _changed(self, editor: str | None) -> None:
        now = time.monotonic()
        self.last_change = now
        if self.dirty_since is None:
            self.dirty_since = now
        if editor is not None:
            self.last_editor = editor

    # -- from other processes ----------------------------------------------------------------------

    def heard_update(self, update: bytes) -> None:
        self.doc.apply_update(update)
        self._changed(None)
        self._fan_out(protocol.update_frame(update), origin=None)

    def heard_awareness(self, frame: bytes) -> None:
        try:
            parsed = protocol.parse(frame)
            entries = protocol.read_awareness(parsed.payload)
        except Malformed:
            return
        for entry in entries:
            if entry.state is None:
                self.awareness.pop(entry.client_id, None)
            else:
                self.awareness[entry.client_id] = entry
        self._fan_out(frame, origin=None)

    def heard_saved(self, version: int, text_digest: str) -> None:
        """Another process wrote the note: when it wrote what this room has, nothing is due."""
        self.version = max(self.version, version)
        text = str(self.text)
        if digest(text) == text_digest:
            self.saved_text = text
            self.dirty_since = None
            self._tell_saved()

    def _tell_saved(self) -> None:
        for peer in list(self.peers):
            peer.offer({"type": "collab.saved", "data": {"version": self.version}})

    # -- saving ------------------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        if self.dirty_since is None:
            return False
        return now - self.last_change >= IDLE or now - self.dirty_since >= MAX_WAIT

    async def save(self) -> None:
        """Write the merged text to the note as a new version (when it differs)."""
        async with self.saving:
            text = str(self.text)
            self.dirty_since = None
            if text == self.saved_text:
                return
            try:
                await self._write(text)
            except Exception:
                self._changed(None)  # tried again after the next pause
                raise

    async def _write(self, text: str) -> None:
        by = self.last_editor or self.owner_id
        db = self.rooms.db
        try:
            document = await notes.update_document(
                db, self.owner_id, self.note_id, self.version, {"content": text}, by=by
            )
        except notes.StaleVersion as stale:
            # Written meanwhile: by another process's room (then it holds this text, or
            # ours goes on top of it) or a title change (the text is ours).
            current: dict[str, Any] = stale.current
            self.version = int(current["version"])
            if current["content"] == text:
                self.saved_text = text
                await self.rooms.store.saved(self.note_id, self.version)
                self._tell_saved()
                return
            document = await notes.update_document(
                db, self.owner_id, self.note_id, self.version, {"content": text}, by=by
            )
        except NotFound:
            self.close_all(NOTE_GONE, "This note was deleted.")
            return
        self.version = document.version
        self.saved_text = text
        await self.rooms.store.saved(self.note_id, self.version)
        await self.rooms.share(self.note_id, {"saved": self.version, "digest": digest(text)})
        self._tell_saved()
        if await self.rooms.store.length(self.note_id) > COMPACT_AFTER:
            await self.rooms.store.compact(self.note_id, _merge)

    def close_all(self, code: int, reason: str) -> None:
        for peer in list(self.peers):
            peer.end(code, reason)

    # -- access --------------------------------------------------------------------------------

    async def recheck(self) -> None:
        """Everyone still here may still read the note, with the role they edit with: who lost
        access is cut off at once; a role that changed applies from now on."""
        self.checked = time.monotonic()
        roles: dict[str, Role | None] = {}
        for peer in list(self.peers):
            if peer.user_id not in roles:
                roles[peer.user_id] = await access.role_of(
                    self.rooms.db, peer.user_id, "document", self.note_id
                )
            role = roles[peer.user_id]
            if role is not None and peer.read_only:
                role = "viewer"
            if role is None:
                peer.end(ACCESS_LOST, "Your access to this note was removed.")
            elif role != peer.role:
                peer.role = role
                peer.offer({"type": "collab.role", "data": {"role": role}})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _merge(updates: list[bytes]) -> bytes:
    merged: bytes = protocol.crdt().merge_updates(*updates)
    return merged


class Rooms:
    """This process's rooms."""

    def __init__(self, db: Database, bus: Bus, store: Store) -> None:
        self.db = db
        self.bus = bus
        self.store = store
        self.process = secrets.token_hex(8)
        self.rooms: dict[str, Room] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        bus.subscribe(CHANNEL, self._heard)

    async def enter(self, note_id: str, peer: Peer) -> Room:
        """Put ``peer`` in the note's room (opened here if needed). Raises ``NotFound`` when the
        note is gone."""
        lock = self._opening.setdefault(note_id, asyncio.Lock())
        async with lock:
            room = self.rooms.get(note_id)
            if room is None:
                async with self.db.read() as session:
                    document, _ = await access.document_in(session, peer.user_id, note_id)
                room = Room(self, note_id, document.user_id, document.version)
                await room.load(document.content)
                self.rooms[note_id] = room
                await self.store.mark_open(note_id, self.process)
                room.marked = time.monotonic()
            room.join(peer)
            return room

    async def leave(self, room: Room, peer: Peer) -> None:
        await room.leave(peer)
        if room.peers:
            return
        lock = self._opening.setdefault(room.note_id, asyncio.Lock())
        async with lock:
            if room.peers or self.rooms.get(room.note_id) is not room:
                return
            try:
                await room.save()
            except Exception:
                log.exception("collab_save_failed", note_id=room.note_id)
            del self.rooms[room.note_id]
            await self.store.mark_closed(room.note_id, self.process)
            if not await self.store.is_open(room.note_id):
                await self.store.forget(room.note_id)
        if not lock.locked():
            self._opening.pop(room.note_id, None)

    async def editing(self, note_id: str) -> bool:
        """True while someone (in any process) has the note open to edit together."""
        if note_id in self.rooms:
            return True
        try:
            return await self.store.is_open(note_id)
        except Exception:
            return False

    async def share(self, note_id: str, message: dict[str, Any]) -> None:
        try:
            await self.bus.publish(CHANNEL, {"note": note_id, "from": self.process, **message})
        except Exception as exc:  # Redis away: this process's people still have it
            log.warning("collab_publish_failed", error=f"{type(exc).__name__}")

    async def _heard(self, message: dict[str, Any]) -> None:
        if message.get("from") == self.process:
            return
        room = self.rooms.get(str(message.get("note")))
        if room is None:
            return
        if isinstance(message.get("update"), str):
            room.heard_update(base64.b64decode(message["update"]))
        elif isinstance(message.get("awareness"), str):
            room.heard_awareness(base64.b64decode(message["awareness"]))
        elif isinstance(message.get("saved"), int):
            room.heard_saved(int(message["saved"]), str(message.get("digest")))

    async def recheck_all(self) -> None:
        for room in list(self.rooms.values()):
            try:
                await room.recheck()
            except Exception:
                log.exception("collab_recheck_failed", note_id=room.note_id)

    async def tick(self) -> None:
        """Save what is due, keep the "open" marks fresh, re-check access now and then."""
        now = time.monotonic()
        for room in list(self.rooms.values()):
            if room.due(now):
                try:
                    await room.save()
                except Exception:
                    log.exception("collab_save_failed", note_id=room.note_id)
            if now - room.marked >= MARK_EVERY:
                room.marked = now
                try:
                    await self.store.mark_open(room.note_id, self.process)
                except Exception as exc:
                    log.warning("collab_mark_failed", error=f"{type(exc).__name__}")
            if now - room.checked >= RECHECK:
                await room.recheck()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except Exception:
                log.exception("collab_tick_crashed")

    async def close(self) -> None:
        """Shutting down: save every room, end every connection (clients reconnect)."""
        for room in list(self.rooms.values()):
            try:
                await room.save()
            except Exception:
                log.exception("collab_save_failed", note_id=room.note_id)
            for peer in list(room.peers):
                peer.end()
