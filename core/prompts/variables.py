"""A template's typed variables and rendering ``{{name}}`` placeholders into prompt text.

Placeholders are ``{{name}}`` (spaces inside the braces allowed); every placeholder must be a
declared variable. Values are put in literally: a value containing ``{{x}}`` is not rendered
again. Every problem is an ``Invalid`` whose field names the variable (``values.<name>``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from multinotes.errors import Invalid

VariableType = Literal["text", "long_text", "choice", "number"]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,39}$"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,39})\s*\}\}")
#: Longest value of a ``text`` and of a ``long_text`` variable, in characters.
MAX_LENGTH = {"text": 2_000, "long_text": 50_000}
MAX_VARIABLES = 30


class Variable(BaseModel):
    """One variable of a template: its name in ``{{name}}``, how the form asks for it, its type,
    default and whether it must be filled. A ``choice`` has its ``options``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="As written in {{name}}.")
    label: str = Field(default="", max_length=100, description="The form's label (default: name).")
    type: VariableType = "text"
    required: bool = True
    default: str | float | None = Field(
        default=None, description="Used when no value is given (a number for `number`)."
    )
    options: list[str] = Field(
        default_factory=list, max_length=50, description="The choices of a `choice` variable."
    )
    help: str = Field(default="", max_length=200, description="A hint shown under the field.")

    @model_validator(mode="after")
    def _consistent(self) -> Variable:
        self.options = [o.strip() for o in self.options if o.strip()]
        if any(len(o) > 200 for o in self.options):
            raise ValueError("an option is longer than 200 characters")
        if self.type == "choice":
            if not self.options:
                raise ValueError("a choice variable needs at least one option")
            if len(set(self.options)) != len(self.options):
                raise ValueError("the options of a choice variable must differ")
        elif self.options:
            raise ValueError("only a choice variable has options")
        if self.default is not None and self.default != "":
            check_value(self, self.default, field="default")
        else:
            self.default = None
        return self

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


def placeholders(text: str) -> list[str]:
    """The variable names used in ``text``, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def check_template(body: str, system_prompt: str | None, variables: list[Variable]) -> None:
    """Refuse duplicate variable names and placeholders that name no variable."""
    names = [v.name for v in variables]
    if len(variables) > MAX_VARIABLES:
        raise Invalid(fields={"variables": f"At most {MAX_VARIABLES} variables."})
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise Invalid(fields={"variables": f"Declared twice: {', '.join(duplicates)}."})
    for field, text in (("body", body), ("system_prompt", system_prompt or "")):
        unknown = [n for n in placeholders(text) if n not in names]
        if unknown:
            listed = ", ".join("{{" + n + "}}" for n in unknown)
            raise Invalid(
                f"{listed} is not a variable of this template.",
                code="unknown_variable",
                fields={field: f"Declare these variables or remove them: {listed}."},
            )


def check_value(variable: Variable, value: Any, *, field: str) -> str:
    """The text ``value`` renders as, or ``ValueError`` saying what is wrong with it."""
    if variable.type == "number":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if (
            not isinstance(value, int | float)
            or value != value
            or value
            in (
                float("inf"),
                float("-inf"),
            )
        ):
            raise ValueError("must be a number")
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if not isinstance(value, str):
        raise ValueError("must be text")
    if variable.type == "choice":
        if value not in variable.options:
            raise ValueError("must be one of: " + ", ".join(variable.options))
        return value
    limit = MAX_LENGTH[variable.type]
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


def resolve(variables: list[Variable], values: dict[str, Any]) -> dict[str, str]:
    """Each variable's text: the value given, else its default, else "" when not required.
    One ``Invalid`` lists every problem, each under ``values.<name>``."""
    known = {v.name for v in variables}
    errors: dict[str, str] = {
        f"values.{name}": "Not a variable of this template." for name in values if name not in known
    }
    resolved: dict[str, str] = {}
    for variable in variables:
        given = values.get(variable.name)
        if isinstance(given, str) and not given.strip():
            given = None
        if given is None:
            given = variable.default
        if given is None:
            if variable.required:
                errors[f"values.{variable.name}"] = f"{variable.title} is required."
            resolved[variable.name] = ""
            continue
        try:
            resolved[variable.name] = check_value(variable, given, field=variable.name)
        except ValueError as exc:
            errors[f"values.{variable.name}"] = f"{variable.title} {exc}."
    if errors:
        first = next(iter(errors)).removeprefix("values.")
        raise Invalid(
            f"The value of {first} is missing or invalid.", code="invalid_values", fields=errors
        )
    return resolved


def fill(text: str, resolved: dict[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced by its value (in one pass: values are literal)."""
    return PLACEHOLDER.sub(lambda m: resolved.get(m.group(1), m.group(0)), text)


def render(
    body: str, system_prompt: str | None, variables: list[Variable], values: dict[str, Any]
) -> tuple[str, str | None]:
    """The prompt and system prompt with the values put in (``Invalid`` naming the variable)."""
    resolved = resolve(variables, values)
    return fill(body, resolved), fill(system_prompt, resolved) if system_prompt else None
