"""Chains (issue #18 item 3): an ordered list of prompt steps, each on its own model, whose
``{{variables}}`` take the run's input (``{{input}}``: typed text, or the text of an uploaded
document) or an earlier step's answer (``{{step1}}``, ...). A run streams its steps one after
another through the generation pipeline, so each answer is metered, cancellable and saved in the
run's conversation; it can be stopped, and run again from any step reusing earlier answers.

``steps`` checks and renders step definitions, ``documents`` extracts a file's text, ``service``
keeps chains and runs (every read through "chain X as seen by user Y"), ``runner`` executes a
run as a server task, ``api`` is ``/api/chains`` and ``pages`` the ``/chains`` pages."""
