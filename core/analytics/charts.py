"""Geometry of the dashboards' charts, drawn as inline SVG by the templates (no script, no
inline style: CSP-safe). Each chart has a data table beside it for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WIDTH = 600
HEIGHT = 160
#: Bar rows are narrower than columns: their labels stay legible on a phone's width.
ROWS_WIDTH = 420
LABEL_WIDTH = 150
ROW_HEIGHT = 26


def _nice_top(value: float) -> float:
    """The chart's top: the value rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def columns(points: Sequence[tuple[str, Sequence[float]]], *, series: int = 1) -> dict[str, Any]:
    """Vertical bars, one slot per point (a day), ``series`` bars side by side in each slot."""
    top = _nice_top(max((v for _label, values in points for v in values), default=0))
    slot = WIDTH / max(len(points), 1)
    bar = max(slot * 0.8 / series, 0.5)
    baseline = HEIGHT - 18
    bars = []
    for index, (label, values) in enumerate(points):
        for s, value in enumerate(values[:series]):
            height = round(value / top * (baseline - 16), 2)
            bars.append(
                {
                    "label": label,
                    "value": value,
                    "series": s,
                    "x": round(index * slot + slot * 0.1 + s * bar, 2),
                    "y": round(baseline - height, 2),
                    "width": round(bar, 2),
                    "height": height,
                }
            )
    step = max(1, len(points) // 6)
    ticks = [
        {"x": round(i * slot + slot / 2, 2), "label": label}
        for i, (label, _v) in enumerate(points)
        if i % step == 0
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "baseline": baseline,
        "top": top,
        "bars": bars,
        "ticks": ticks,
    }


def rows(items: Sequence[tuple[str, Sequence[float]]], *, series: int = 1) -> dict[str, Any]:
    """Horizontal bars, one row per item (a step, a model), ``series`` bars stacked in a row."""
    top = _nice_top(max((v for _label, values in items for v in values), default=0))
    span = ROWS_WIDTH - LABEL_WIDTH - 70
    bar = (ROW_HEIGHT - 6) / series
    out = []
    for index, (label, values) in enumerate(items):
        y = index * ROW_HEIGHT
        out.append(
            {
                "label": label,
                "y": y,
                "text_y": y + ROW_HEIGHT / 2 + 4,
                "bars": [
                    {
                        "series": s,
                        "value": value,
                        "y": round(y + 3 + s * bar, 2),
                        "height": round(bar, 2),
                        "width": round(max(value, 0) / top * span, 2),
                    }
                    for s, value in enumerate(values[:series])
                ],
            }
        )
    return {
        "width": ROWS_WIDTH,
        "height": max(len(items), 1) * ROW_HEIGHT,
        "label_width": LABEL_WIDTH,
        "rows": out,
    }


def heat(rate: float) -> int:
    """A retention cell's shade, 0 (none) to 5 (everyone): a class name, not a style."""
    return 0 if rate <= 0 else min(5, 1 + int(rate * 5))
