"""What a user typed, understood once and spoken to each full-text engine safely.

The syntax: words (all must match), ``"a phrase"``, ``-word`` or ``-"a phrase"`` (must not
match), ``word*`` (a prefix). Everything else is text: operators of the engines (``AND``, ``OR``,
``NEAR``, ``+``, ``~``, ``@``, parentheses, column filters) have no meaning here, so no query can
be a syntax error in SQLite or MySQL. Words are what the FTS5 ``unicode61`` tokenizer sees:
runs of letters and digits; a bare token with several (``e-mail``, ``v1.2``) is a phrase.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_TERMS = 12
MAX_WORD = 64

WORD = re.compile(r"[^\W_]+")
TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')

#: InnoDB's default stopwords: a required one makes a boolean-mode query match nothing.
INNODB_STOPWORDS = frozenset(
    {
        "a", "about", "an", "are", "as", "at", "be", "by", "com", "de", "en", "for", "from", "how",
        "i", "in", "is", "it", "la", "of", "on", "or", "that", "the", "this", "to", "was", "what",
        "when", "where", "who", "will", "with", "und", "www",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]
    negated: bool = False
    prefix: bool = False

    @property
    def phrase(self) -> bool:
        return len(self.words) > 1


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    terms: tuple[Term, ...]

    @property
    def positive(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if not t.negated)

    @property
    def negative(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.negated)

    @property
    def searchable(self) -> bool:
        """Only exclusions ("-draft") select nothing to rank."""
        return bool(self.positive)

    def highlight_words(self) -> list[tuple[str, bool]]:
        """(folded word, is a prefix) for every word to mark in a snippet."""
        seen: dict[str, bool] = {}
        for term in self.positive:
            for index, word in enumerate(term.words):
                prefix = term.prefix and index == len(term.words) - 1
                key = fold(word)
                seen[key] = seen.get(key, False) or prefix
        return list(seen.items())


def fold(text: str) -> str:
    """Lower case without accents, one character for one (positions stay comparable)."""
    if text.isascii():
        return text.lower()
    out = []
    for char in text:
        base = unicodedata.normalize("NFD", char)[0] if ord(char) > 127 else char
        low = base.lower()
        out.append(low if len(low) == 1 else base)
    return "".join(out)


def parse(text: str) -> ParsedQuery:
    terms: list[Term] = []
    for match in TOKEN.finditer(text):
        negated_phrase, phrase, bare = match.groups()
        if bare is not None:
            negated = bare.startswith("-") and len(bare) > 1
            prefix = bare.endswith("*")
            body = bare
        else:
            negated, prefix, body = bool(negated_phrase), False, phrase
        words = tuple(w[:MAX_WORD] for w in WORD.findall(body))
        if not words:
            continue
        # "-word" only excludes when it starts the token; "a-b" is the phrase "a b".
        if bare is not None and negated and not bare[1:2].isalnum():
            negated = False
        terms.append(Term(words, negated=negated, prefix=prefix))
        if len(terms) == MAX_TERMS:
            break
    return ParsedQuery(text, tuple(terms))


# -- SQLite FTS5 ----------------------------------------------------------------------------------


def _fts5_term(term: Term) -> str:
    # Words hold letters and digits only, so a double-quoted string is always well formed.
    quoted = '"' + " ".join(term.words) + '"'
    return quoted + " *" if term.prefix else quoted


def to_fts5(query: ParsedQuery) -> str:
    """An FTS5 MATCH expression: positive terms ANDed, then ``NOT`` each exclusion."""
    expression = " AND ".join(_fts5_term(t) for t in query.positive)
    for term in query.negative:
        expression += " NOT " + _fts5_term(term)
    return expression


# -- MySQL / MariaDB boolean mode -----------------------------------------------------------------


@dataclass(frozen=True)
class MysqlQuery:
    """``against`` for ``MATCH ... AGAINST (... IN BOOLEAN MODE)``, and the words the index cannot
    find (shorter than the server's minimum token size), matched by ``REGEXP`` instead.
    ``against`` is empty when no indexed word is left."""

    against: str
    short_words: tuple[str, ...]


def to_mysql(query: ParsedQuery, min_token: int = 3) -> MysqlQuery:
    parts: list[str] = []
    short: list[str] = []
    for term in query.terms:
        sign = "-" if term.negated else "+"
        if term.phrase:
            # A phrase may hold stopwords and short words: InnoDB matches the phrase as text.
            parts.append(f'{sign}"{" ".join(term.words)}"')
            continue
        word = term.words[0]
        if term.prefix:
            parts.append(f"{sign}{word}*")
        elif word.lower() in INNODB_STOPWORDS:
            continue  # not indexed: requiring it would match nothing, excluding it nothing
        elif len(word) < min_token:
            if not term.negated:
                short.append(word)
        else:
            parts.append(f"{sign}{word}")
    if not any(p.startswith("+") for p in parts):
        parts = []  # exclusions alone select nothing in boolean mode
    return MysqlQuery(" ".join(parts), tuple(short))


def word_regexp(word: str) -> str:
    """A REGEXP (PCRE on MariaDB, ICU on MySQL) matching ``word`` as a whole word.

    Lookarounds rather than ``(^|[^[:alnum:]])word($|[^[:alnum:]])``: the same matches, but the
    alternations made PCRE try every position of the text (2.5x slower over 100,000 titles)."""
    return r"(?<![[:alnum:]])" + re.escape(word) + r"(?![[:alnum:]])"
