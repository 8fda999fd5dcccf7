"""How a stored file is handed to a browser: inline only for formats a browser shows but
cannot run, as an attachment otherwise, under its own name (RFC 6266)."""

from __future__ import annotations

from urllib.parse import quote

from multinotes.files import sniff
from multinotes.files.models import File

#: Served inline: formats a browser shows but cannot run. Everything else is an attachment.
INLINE_SAFE = frozenset(k.content_type for k in sniff.KINDS.values() if k.inline)


def content_disposition(row: File) -> str:
    inline = row.content_type in INLINE_SAFE
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in row.name)
    return (
        f'{"inline" if inline else "attachment"}; filename="{ascii_name}"; '
        f"filename*=UTF-8''{quote(row.name, safe='')}"
    )
