"""Reading fields of a posted page form (``await request.post()``)."""

from __future__ import annotations

from typing import Any


def form_field(form: Any, name: str) -> str:
    """The text field ``name``, stripped; ``""`` when it is missing or is a file upload."""
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""
