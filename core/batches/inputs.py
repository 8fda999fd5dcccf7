"""A batch's input: CSV text (uploaded or pasted) or rows given as JSON objects, checked against
the template's variables before anything is stored.

Columns are variable names; a column that names no variable is kept (it comes back in the
download next to the answers) but fills nothing. Every problem is an ``Invalid`` whose field
says where: ``csv`` (unreadable text), ``columns.<name>`` (a required variable without its
column), ``rows`` (none, or too many), ``rows.<n>`` (row n over the size limit) and
``rows.<n>.<name>`` (a value the variable refuses); rows count from 1, the first row of data.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from multinotes.errors import Invalid
from multinotes.prompts import variables as vars_

MAX_ROWS = 1000
#: Longest row: the characters of all its values together.
MAX_ROW_CHARS = 20_000
MAX_COLUMNS = 50
MAX_COLUMN_NAME = 100
#: Largest CSV text (an upload or a paste), in bytes.
MAX_CSV_BYTES = 4 * 1024 * 1024
#: Row errors reported at once (a CSV with a bad column would otherwise list every row).
MAX_ROW_ERRORS = 20

Rows = list[dict[str, str]]


def read_csv(text: str, field: str = "csv") -> tuple[list[str], Rows]:
    """The header's column names and the rows of ``text`` (comma, semicolon or tab separated;
    the first line is the header). Blank lines are skipped; a short row's missing cells are
    empty; a row longer than the header is refused."""
    text = text.lstrip("\ufeff")
    if len(text.encode()) > MAX_CSV_BYTES:
        raise Invalid(
            "The CSV is too large.",
            code="csv_too_large",
            fields={field: f"At most {MAX_CSV_BYTES // (1024 * 1024)} MB."},
        )
    if not text.strip():
        raise Invalid("The CSV is empty.", code="csv_empty", fields={field: "No header line."})
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    try:
        lines = [line for line in csv.reader(io.StringIO(text), delimiter=delimiter) if line]
    except csv.Error as exc:
        raise Invalid(
            "The CSV cannot be read.", code="csv_malformed", fields={field: str(exc)}
        ) from None
    header = [name.strip() for name in lines[0]]
    _check_header(header, field)
    rows: Rows = []
    for number, cells in enumerate(lines[1:], start=1):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            raise Invalid(
                f"Row {number} has more cells than the header has columns.",
                code="csv_malformed",
                fields={f"rows.{number}": f"{len(cells)} cells; the header has {len(header)}."},
            )
        cells = cells + [""] * (len(header) - len(cells))
        rows.append(dict(zip(header, cells, strict=True)))
    return header, rows


def _check_header(header: list[str], field: str) -> None:
    if len(header) > MAX_COLUMNS:
        raise Invalid(fields={field: f"At most {MAX_COLUMNS} columns."}, code="csv_malformed")
    if any(not name for name in header):
        raise Invalid(
            "A column of the header has no name.",
            code="csv_malformed",
            fields={field: "Every column of the first line needs a name."},
        )
    if any(len(name) > MAX_COLUMN_NAME for name in header):
        raise Invalid(
            fields={field: f"Column names are at most {MAX_COLUMN_NAME} characters."},
            code="csv_malformed",
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise Invalid(
            f"The column {duplicates[0]!r} appears twice.",
            code="csv_malformed",
            fields={f"columns.{duplicates[0]}": "Each column once."},
        )


def json_rows(raw: list[dict[str, Any]]) -> tuple[list[str], Rows]:
    """Rows given as objects (column name → value): the columns in order of first use and the
    rows as text (numbers written as the template would render them)."""
    columns: list[str] = []
    rows: Rows = []
    for number, item in enumerate(raw, start=1):
        row: dict[str, str] = {}
        for name, value in item.items():
            if name not in columns:
                columns.append(name)
            if value is None:
                row[name] = ""
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                raise Invalid(
                    fields={f"rows.{number}.{name}": "A value is text or a number."},
                    code="invalid_values",
                )
            else:
                row[name] = value if isinstance(value, str) else str(value)
        rows.append(row)
    _check_header(columns, "rows")
    return columns, rows


def check_rows(variables: list[vars_.Variable], columns: list[str], rows: Rows) -> None:
    """Refuse input the template cannot run: a required variable (without a default) missing
    from the columns, no rows or too many, a row over the size limit, a value a variable
    refuses (a choice not among its options, a number that is not one, a required one empty)."""
    missing = [
        v.name for v in variables if v.required and v.default is None and v.name not in columns
    ]
    if missing:
        listed = ", ".join(missing)
        raise Invalid(
            f"The template needs the column{'s' if len(missing) > 1 else ''} {listed}.",
            code="missing_columns",
            fields={
                f"columns.{name}": "Required by the template: add this column." for name in missing
            },
        )
    if not rows:
        raise Invalid("There are no rows to run.", code="no_rows", fields={"rows": "No rows."})
    if len(rows) > MAX_ROWS:
        raise Invalid(
            f"At most {MAX_ROWS} rows in a batch ({len(rows)} given).",
            code="too_many_rows",
            fields={"rows": f"At most {MAX_ROWS}."},
        )
    known = {v.name for v in variables}
    errors: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        size = sum(len(value) for value in row.values())
        if size > MAX_ROW_CHARS:
            raise Invalid(
                f"Row {number} is too large ({size} characters; at most {MAX_ROW_CHARS}).",
                code="row_too_large",
                fields={f"rows.{number}": f"At most {MAX_ROW_CHARS} characters in a row."},
            )
        try:
            vars_.resolve(variables, values_of(row, known))
        except Invalid as exc:
            for key, message in (exc.fields or {}).items():
                name = key.removeprefix("values.")
                errors[f"rows.{number}.{name}"] = message
        if len(errors) >= MAX_ROW_ERRORS:
            break
    if errors:
        first = next(iter(errors))
        raise Invalid(
            f"Some values cannot fill the template (first: {first}).",
            code="invalid_values",
            fields=errors,
        )


def values_of(row: dict[str, str], known: set[str]) -> dict[str, Any]:
    """The row's values that fill variables (other columns fill nothing)."""
    return {name: value for name, value in row.items() if name in known}
