"""A batch's results as a file: CSV or XLSX (openpyxl), one line per row of input with its
columns, its status and, per model, the answer, its status and its cost.

Cells are the user's and the models' text: a text starting like a formula (``=``, ``+``, ``-``,
``@``) would run as one in a spreadsheet, so the CSV prefixes it with ``'`` and the workbook
stores it as a plain string."""

from __future__ import annotations

import csv
import io
from typing import Any

from multinotes.batches.models import Batch
from multinotes.batches.service import ResultRow

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def table(batch: Batch, results: list[ResultRow]) -> list[list[Any]]:
    """The header line, then one line per row."""
    columns, models = list(batch.columns), list(batch.models)
    header: list[Any] = ["row", *columns, "status", "note"]
    for model in models:
        header += [f"{model} answer", f"{model} status", f"{model} cost"]
    lines = [header]
    for result in results:
        row = result.row
        line: list[Any] = [
            row.position,
            *[row.inputs.get(c, "") for c in columns],
            row.status,
            row.note or "",
        ]
        for model in models:
            answer = result.answers.get(model)
            line += (
                [answer.text, answer.status, answer.cost] if answer is not None else ["", "", ""]
            )
        lines.append(line)
    return lines


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(lines: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for line in lines:
        writer.writerow([_safe(v) for v in line])
    return ("\ufeff" + out.getvalue()).encode()  # the BOM: spreadsheets read it as UTF-8


def to_xlsx(lines: list[list[Any]], title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font

    book = Workbook(write_only=False)
    sheet = book.active
    assert sheet is not None
    sheet.title = "Results"
    for index, line in enumerate(lines, start=1):
        for column, value in enumerate(line, start=1):
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
            cell = sheet.cell(row=index, column=column, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever it starts with
            if index == 1:
                cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    book.properties.title = title[:200]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
