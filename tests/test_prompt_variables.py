"""Rendering prompt templates: ``{{name}}`` placeholders, typed values, defaults, required
variables, and errors that name the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from multinotes.errors import Invalid
from multinotes.prompts.variables import Variable, check_template, placeholders, render

TOPIC = Variable(name="topic", label="Topic")
TONE = Variable(name="tone", type="choice", options=["formal", "casual"], default="casual")
WORDS = Variable(name="words", type="number", required=False)
NOTES = Variable(name="notes", type="long_text", required=False)
ALL = [TOPIC, TONE, WORDS, NOTES]


def test_placeholders_are_found_once_in_order_with_or_without_spaces():
    assert placeholders("{{ b }} {{a}} {{b}} {a} {{ not valid }} {{1x}}") == ["b", "a"]


def test_values_and_defaults_are_put_in_literally():
    prompt, system = render(
        "About {{topic}}, {{ tone }}, {{words}} words.{{notes}}",
        "Tone: {{tone}}",
        ALL,
        {"topic": "cats {{tone}}", "words": 120.0},
    )
    assert prompt == "About cats {{tone}}, casual, 120 words."
    assert system == "Tone: casual"


@pytest.mark.parametrize(
    ("value", "text"), [(3, "3"), (2.5, "2.5"), ("7", "7"), (" 1e3 ", "1000"), (-0.25, "-0.25")]
)
def test_numbers_render_without_needless_decimals(value: object, text: str):
    assert render("{{words}}", None, [WORDS], {"words": value})[0] == text


@pytest.mark.parametrize(
    ("values", "field", "says"),
    [
        ({}, "values.topic", "Topic is required."),
        ({"topic": "   "}, "values.topic", "Topic is required."),
        ({"topic": "x", "tone": "angry"}, "values.tone", "must be one of: formal, casual"),
        ({"topic": "x", "words": "many"}, "values.words", "must be a number"),
        ({"topic": "x", "words": True}, "values.words", "must be a number"),
        ({"topic": "x", "words": "nan"}, "values.words", "must be a number"),
        ({"topic": 5}, "values.topic", "must be text"),
        ({"topic": "x" * 2_001}, "values.topic", "at most 2000 characters"),
        ({"topic": "x", "colour": "red"}, "values.colour", "Not a variable"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(values: dict, field: str, says: str):
    with pytest.raises(Invalid) as raised:
        render("{{topic}}", None, ALL, values)
    assert raised.value.status == 422
    assert says in raised.value.fields[field]


def test_every_problem_is_reported_at_once():
    with pytest.raises(Invalid) as raised:
        render("{{topic}}", None, ALL, {"tone": "loud", "words": "x"})
    assert set(raised.value.fields) == {"values.topic", "values.tone", "values.words"}


def test_a_long_text_takes_long_values():
    assert len(render("{{notes}}", None, [NOTES], {"notes": "y" * 40_000})[0]) == 40_000


def test_templates_must_declare_what_they_use_and_declare_it_once():
    check_template("{{topic}} {{tone}}", "{{ words }}", ALL)
    with pytest.raises(Invalid) as raised:
        check_template("{{topic}} {{who}}", None, ALL)
    assert (
        raised.value.error_code == "unknown_variable" and "{{who}}" in raised.value.fields["body"]
    )
    with pytest.raises(Invalid) as raised:
        check_template("x", "{{mood}}", ALL)
    assert "system_prompt" in raised.value.fields
    with pytest.raises(Invalid) as raised:
        check_template("{{topic}}", None, [TOPIC, Variable(name="topic")])
    assert "topic" in raised.value.fields["variables"]


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "x", "type": "choice"},
        {"name": "x", "type": "choice", "options": ["a", "a"]},
        {"name": "x", "type": "text", "options": ["a"]},
        {"name": "x", "type": "choice", "options": ["a"], "default": "b"},
        {"name": "x", "type": "number", "default": "lots"},
        {"name": "2x"},
        {"name": "x", "colour": "red"},
    ],
)
def test_inconsistent_variables_are_refused(spec: dict):
    with pytest.raises(ValidationError):
        Variable.model_validate(spec)


def test_an_empty_default_is_no_default():
    assert Variable(name="x", default="").default is None
