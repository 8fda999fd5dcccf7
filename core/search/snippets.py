"""Snippets: a short excerpt of an item around what matched, as HTML that is escaped
everywhere except for the ``<mark>`` elements around matched words.

SQLite's ``snippet()`` marks matches with two control characters (``OPEN``/``CLOSE``), turned
into ``<mark>`` after the text is escaped. For MySQL (which has no snippet function) and for
semantic hits, ``build_snippet`` picks the window of text with the most matched words itself.
"""

from __future__ import annotations

import re
from html import escape

from multinotes.search.query import ParsedQuery, fold

OPEN, CLOSE, ELLIPSIS = "\x02", "\x03", "…"
SNIPPET_WORDS = 24

_TOKENS = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")


def marked_to_html(text: str) -> str:
    """Escape ``text`` and turn OPEN…CLOSE pairs into ``<mark>``; a stray marker (the content
    itself held one) is dropped, so the HTML stays balanced."""
    out: list[str] = []
    inside = False
    for piece in re.split(f"([{OPEN}{CLOSE}])", text):
        if piece == OPEN:
            if not inside:
                out.append("<mark>")
                inside = True
        elif piece == CLOSE:
            if inside:
                out.append("</mark>")
                inside = False
        else:
            out.append(escape(_SPACE.sub(" ", piece), quote=False))
    if inside:
        out.append("</mark>")
    return "".join(out).strip()


def build_snippet(text: str, query: ParsedQuery | None, words: int = SNIPPET_WORDS) -> str:
    """The ``words``-word window of ``text`` holding the most distinct matched words (the start
    of the text when nothing matches), escaped, with matches in ``<mark>``."""
    tokens = list(_TOKENS.finditer(text))
    if not tokens:
        return escape(_SPACE.sub(" ", text[:200]).strip(), quote=False)
    wanted = query.highlight_words() if query is not None else []
    # ``fold`` maps one character to one, so the whole text folds once and each token's folded
    # form is a slice of it (a search answers ~25 snippets over long texts: issue #17).
    folded_text = fold(text) if wanted else ""
    folded = [folded_text[t.start() : t.end()] for t in tokens] if wanted else []
    exact = {w for w, _ in wanted}
    prefixes = tuple(w for w, prefix in wanted if prefix)
    hits = [f in exact or (bool(prefixes) and f.startswith(prefixes)) for f in folded]
    if not wanted:
        hits = [False] * len(tokens)
    best_start, best_score = 0, -1
    if any(hits):
        for start in (i for i, hit in enumerate(hits) if hit):
            # Start a little before the first match, so it reads as a sentence.
            begin = max(0, start - 3)
            window = {folded[i] for i in range(begin, min(len(tokens), begin + words)) if hits[i]}
            if len(window) > best_score:
                best_start, best_score = begin, len(window)
    end = min(len(tokens), best_start + words)
    first, last = tokens[best_start], tokens[end - 1]
    cut_from = 0 if best_start == 0 else first.start()
    cut_to = len(text) if end == len(tokens) else last.end()
    pieces: list[str] = [ELLIPSIS] if cut_from > 0 else []
    position = cut_from
    for token, hit in zip(tokens[best_start:end], hits[best_start:end], strict=True):
        if hit:
            pieces += [_plain(text[position : token.start()]), OPEN, token.group(), CLOSE]
            position = token.end()
    pieces.append(_plain(text[position:cut_to]))
    if cut_to < len(text):
        pieces.append(ELLIPSIS)
    return marked_to_html("".join(pieces))


def _plain(text: str) -> str:
    """Text of the item itself never carries markers (only ours make marks)."""
    return text.replace(OPEN, "").replace(CLOSE, "")
