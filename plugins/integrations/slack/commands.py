"""What a user typed after ``/multinotes``: help, a default model, or a prompt with the models to
ask (``model:a,b`` or ``@a,@b`` in front; none given: the user's default)."""

from __future__ import annotations

from dataclasses import dataclass, field

HELP = "help"
DEFAULT = "default"
PROMPT = "prompt"
#: At most this many models for one command (each answer is a section of one Slack message).
MAX_MODELS = 4


@dataclass(frozen=True)
class Command:
    kind: str
    prompt: str = ""
    models: list[str] = field(default_factory=list)


def _model_ids(word: str) -> list[str] | None:
    """``model:a,b`` or ``@a,@b`` → ``[a, b]``; any other word → ``None``."""
    if word.startswith("model:"):
        parts = word[len("model:") :].split(",")
    elif word.startswith("@"):
        parts = word.split(",")
    else:
        return None
    ids = [p.strip().removeprefix("@") for p in parts]
    return [i for i in ids if i]


def parse(text: str) -> Command:
    text = text.strip()
    words = text.split()
    if not words or words[0].lower() == HELP:
        return Command(HELP)
    if words[0].lower() == DEFAULT:
        return Command(DEFAULT, models=[m for w in words[1:] for m in (_model_ids(w) or [w])])
    models: list[str] = []
    rest = text
    for word in words:
        ids = _model_ids(word)
        if ids is None:
            break
        models.extend(i for i in ids if i not in models)
        rest = rest[len(rest) - len(rest.lstrip()) :].removeprefix(word)
    return Command(PROMPT, prompt=rest.strip(), models=models)
