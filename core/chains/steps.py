"""A chain's steps: what one holds, which ``{{variables}}`` it may use, and its prompt with the
run's values put in.

A step is an inline prompt (``prompt``, optional ``system_prompt``) or a library template
(``template_id``) whose variables get ``values``. Either may use ``{{input}}`` (the run's
input) and ``{{stepN}}`` for the answer of an *earlier* step N (1-based). Placeholders are
filled in one pass, so an answer that itself contains ``{{step1}}`` is not rendered again."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from multinotes.prompts.variables import PLACEHOLDER, fill, placeholders

MAX_STEPS = 10
MAX_PROMPT = 50_000
INPUT = "input"
STEP_NAME = re.compile(r"^step([1-9][0-9]?)$")


class Step(BaseModel):
    """One step: a prompt (or a template) on one model."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=100, description="Shown on the run page.")
    model: str = Field(min_length=1, max_length=200, description="The model that answers.")
    prompt: str | None = Field(
        default=None,
        max_length=MAX_PROMPT,
        description="An inline prompt using {{input}} and {{stepN}} (earlier steps' answers).",
    )
    system_prompt: str | None = Field(default=None, max_length=20_000)
    template_id: str | None = Field(
        default=None, max_length=32, description="A library template instead of `prompt`."
    )
    values: dict[str, str] = Field(
        default_factory=dict,
        max_length=30,
        description="A template step's value per variable; may use {{input}} and {{stepN}}.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Step:
        if self.prompt is not None and not self.prompt.strip():
            self.prompt = None
        if (self.prompt is None) == (self.template_id is None):
            raise ValueError("give either a prompt or a template_id")
        if self.prompt is not None and self.values:
            raise ValueError("values are for a template step")
        if self.system_prompt is not None and not self.system_prompt.strip():
            self.system_prompt = None
        if self.template_id is not None and self.system_prompt is not None:
            raise ValueError("a template step uses its template's system prompt")
        return self


def step_title(step: dict[str, Any], position: int) -> str:
    return str(step.get("title") or f"Step {position + 1}")


def variable_problems(texts: list[str], position: int) -> list[str]:
    """What is wrong with the placeholders of step ``position`` (0-based): names that are
    neither ``input`` nor an earlier step."""
    problems = []
    for name in dict.fromkeys(n for text in texts for n in placeholders(text)):
        if name == INPUT:
            continue
        match = STEP_NAME.match(name)
        if match is None:
            problems.append("{{" + name + "}} is unknown: use {{input}} or {{stepN}}")
        elif int(match.group(1)) > position:
            earlier = ", ".join("{{" + f"step{n}" + "}}" for n in range(1, position + 1))
            allowed = "{{input}}" + (f" and {earlier}" if earlier else "")
            problems.append(
                "{{" + name + f"}}}} is not an earlier step: step {position + 1} may use {allowed}"
            )
    return problems


def uses_input(steps: list[dict[str, Any]]) -> bool:
    """Whether any step reads ``{{input}}`` (directly or through a template's values)."""
    for step in steps:
        texts = [step.get("prompt") or "", step.get("system_prompt") or ""]
        texts += list((step.get("values") or {}).values())
        if any(INPUT in placeholders(text) for text in texts):
            return True
    return False


def render(snapshot: dict[str, Any], context: dict[str, str]) -> tuple[str, str | None]:
    """A step's prompt and system prompt with ``context`` (``input``, ``step1``, ...) put in.

    ``snapshot`` is the step as a run keeps it: an inline step's ``prompt`` and
    ``system_prompt``, or a template step's body and system prompt (copied when the run
    started) with ``values`` for every template variable."""
    values = snapshot.get("values")
    if values is not None:
        filled = {name: fill(value, context) for name, value in values.items()}
        prompt = PLACEHOLDER.sub(lambda m: filled.get(m.group(1), ""), snapshot["prompt"])
        system = snapshot.get("system_prompt")
        if system:
            system = PLACEHOLDER.sub(lambda m: filled.get(m.group(1), ""), system)
        return prompt, system or None
    system = snapshot.get("system_prompt")
    return fill(snapshot["prompt"], context), fill(system, context) if system else None
