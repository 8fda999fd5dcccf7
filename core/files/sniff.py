"""What an upload really is, judged by its bytes against an allowlist.

The declared Content-Type and the file name's extension never decide alone: the bytes name a
kind, and the declared type and extension must both agree with it (or say nothing useful).
"""

from __future__ import annotations

import codecs
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

#: How many leading bytes the signature checks look at.
HEAD_BYTES = 4096


@dataclass(frozen=True)
class Kind:
    name: str
    content_type: str
    extensions: frozenset[str]
    #: Declared types that agree with this kind (besides the canonical one).
    aliases: frozenset[str] = frozenset()
    #: Safe to show inline in a browser (cannot run script).
    inline: bool = False
    family: str = "other"  # image, pdf, audio, video, office, text

    def accepts_type(self, declared: str) -> bool:
        return declared == self.content_type or declared in self.aliases


def _k(name: str, ctype: str, exts: str, aliases: str = "", *, inline: bool, family: str) -> Kind:
    return Kind(name, ctype, frozenset(exts.split()), frozenset(aliases.split()), inline, family)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        _k("png", "image/png", "png", inline=True, family="image"),
        _k("jpeg", "image/jpeg", "jpg jpeg jpe", "image/pjpeg", inline=True, family="image"),
        _k("gif", "image/gif", "gif", inline=True, family="image"),
        _k("webp", "image/webp", "webp", inline=True, family="image"),
        _k("pdf", "application/pdf", "pdf", inline=True, family="pdf"),
        _k("mp3", "audio/mpeg", "mp3", "audio/mp3 audio/x-mpeg", inline=True, family="audio"),
        _k(
            "wav",
            "audio/wav",
            "wav",
            "audio/x-wav audio/wave audio/vnd.wave",
            inline=True,
            family="audio",
        ),
        _k(
            "ogg",
            "audio/ogg",
            "ogg oga opus",
            "application/ogg audio/opus",
            inline=True,
            family="audio",
        ),
        _k("flac", "audio/flac", "flac", "audio/x-flac", inline=True, family="audio"),
        _k("aac", "audio/aac", "aac", "audio/aacp audio/x-aac", inline=True, family="audio"),
        _k("m4a", "audio/mp4", "m4a", "audio/x-m4a audio/m4a", inline=True, family="audio"),
        _k("mp4", "video/mp4", "mp4 m4v", "video/x-m4v", inline=True, family="video"),
        _k("webm", "video/webm", "webm", "audio/webm", inline=True, family="video"),
        _k(
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
            inline=False,
            family="office",
        ),
        _k(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
            inline=False,
            family="office",
        ),
        _k(
            "pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "pptx",
            inline=False,
            family="office",
        ),
        _k("text", "text/plain", "txt text log", inline=True, family="text"),
        _k(
            "markdown",
            "text/markdown",
            "md markdown",
            "text/x-markdown text/plain",
            inline=True,
            family="text",
        ),
        _k("csv", "text/csv", "csv", "application/csv text/plain", inline=True, family="text"),
    )
}

#: Declared types that say nothing about the content.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

OFFICE_MARKERS = {
    "docx": b"wordprocessingml.document.main+xml",
    "xlsx": b"spreadsheetml.sheet.main+xml",
    "pptx": b"presentationml.presentation.main+xml",
}


class Refused(Exception):
    """The bytes are not an allowed kind, or disagree with what was declared."""


def extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower().lstrip(".")


def signature(head: bytes) -> str | None:
    """The binary kind named by the leading bytes: a key of KINDS, "zip", or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if len(head) > 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # AAC in ADTS frames
        return "aac"
    if head.startswith(b"ID3") or (
        len(head) > 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0
    ):
        return "mp3"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "m4a" if brand in (b"M4A ", b"M4B ") else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return "webm"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return None


def describe(head: bytes) -> str:
    """A short human name for refused content (for the error message)."""
    lowered = head[:512].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<script" in lowered:
        return "HTML"
    if b"<svg" in lowered:
        return "SVG"
    if lowered.startswith(b"<?xml"):
        return "XML"
    import puremagic

    try:
        found = puremagic.from_string(head)
    except puremagic.PureError:  # it recognises nothing
        return "an unrecognised format"
    return found.lstrip(".").upper() if found else "an unrecognised format"


MARKUP_PREFIXES = (b"<!doctype", b"<html", b"<svg", b"<?xml", b"<script", b"<head", b"<body")


class TextCheck:
    """Fed chunk by chunk: does the whole stream decode as UTF-8 without NUL bytes?"""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.ok = True

    def feed(self, chunk: bytes, final: bool = False) -> None:
        if not self.ok:
            return
        if b"\x00" in chunk:
            self.ok = False
            return
        try:
            self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            self.ok = False


def judge(head: bytes, name: str, declared_type: str) -> Kind:
    """The kind of an upload from its first bytes; text is provisional until the whole stream
    has passed a TextCheck. Raises Refused with a message naming the problem."""
    declared_type = declared_type.split(";")[0].strip().lower()
    ext = extension(name)
    found = signature(head)
    if found == "zip":
        # The office kind is confirmed later from [Content_Types].xml; the name says which.
        candidates = [k for k in ("docx", "xlsx", "pptx") if ext in KINDS[k].extensions]
        if not candidates:
            raise Refused("This is a zip archive, which is not an allowed file type.")
        kind = KINDS[candidates[0]]
    elif found is not None:
        kind = KINDS[found]
        if ext == "m4a" and found == "mp4":  # many encoders write a generic brand
            kind = KINDS["m4a"]
    else:
        texts = [k for k in ("text", "markdown", "csv") if ext in KINDS[k].extensions]
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if not candidates_text(head) or not texts or stripped.startswith(MARKUP_PREFIXES):
            what = describe(head)
            raise Refused(
                f"The content is {what}, which is not an allowed file type. Allowed: images "
                "(PNG, JPEG, GIF, WebP), PDF, audio (MP3, WAV, OGG, FLAC, AAC, M4A, WebM), "
                "video (MP4, WebM), Word/Excel/PowerPoint documents, and plain text, Markdown "
                "or CSV."
            )
        kind = KINDS[texts[0]]
    if ext and ext not in kind.extensions:
        raise Refused(
            f"The name ends in .{ext} but the content is {kind.name.upper()}; "
            f"name it .{sorted(kind.extensions)[0]}."
        )
    if declared_type not in GENERIC_TYPES and not kind.accepts_type(declared_type):
        raise Refused(
            f"The declared type {declared_type} does not match the content ({kind.content_type})."
        )
    return kind


def candidates_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, False)
    except UnicodeDecodeError:
        return False
    return True


def office_kind(stream: BinaryIO) -> str | None:
    """Which Office Open XML document a zip is, from its [Content_Types].xml (None if not one,
    or a macro-enabled variant)."""
    try:
        with zipfile.ZipFile(stream) as archive:
            info = archive.getinfo("[Content_Types].xml")
            if info.file_size > 1024 * 1024:
                return None
            types = archive.read(info)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return None
    if b"macroEnabled" in types:
        return None
    for name, marker in OFFICE_MARKERS.items():
        if marker in types:
            return name
    return None
