"""Batch runs (issue #18 item 4): one prompt template run over many rows of values (a CSV
upload or pasted rows) on one or more models, in a background task.

Every row is its own trip through the generation pipeline (credits held for all of the row's
models at once, settled to the real cost), so a batch is metered and saved like any chat, can
never overdraw, and stops cleanly when the wallet runs dry: the rows left are marked skipped.
"""
