"""What the logs leave out: a background task cancelled by a shutdown is not an error."""

from __future__ import annotations

import asyncio
import logging

from multinotes.logs import CancelledTaskFilter


def record(exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(
        "taskiq.receiver.receiver",
        logging.ERROR,
        __file__,
        1,
        "Exception found while executing function.",
        None,
        exc_info,
    )


def test_a_task_cancelled_by_a_shutdown_is_not_logged_as_an_error():
    keep = CancelledTaskFilter()
    assert not keep.filter(record(asyncio.CancelledError()))
    assert keep.filter(record(RuntimeError("a real failure")))
    assert keep.filter(record(None))
