"""Scheduled runs (issue #18 item 5): a prompt template with fixed variable values, run on a cron
schedule in its owner's time zone on chosen models; each run's answers are saved as notes in a
chosen folder and can be mailed. Pause, resume, run now, and a history of runs.

``cron`` parses and evaluates the expressions (DST-correct), ``service`` keeps schedules and
claims due runs (every read goes through "schedule X as seen by user Y"), ``runner`` executes a
claimed run in the background (an owner out of credits pauses the schedule and is told), ``api``
is the JSON API under ``/api/schedules`` and ``pages`` the ``/schedules`` pages.

What a schedule runs is named by ``target_type`` and ``target_id``: a ``template`` (with
variable values, on the models chosen) or a ``chain`` (with a fixed input; each step names its
model), each one entry of ``runner.TARGETS`` (``chain_target`` for chains)."""
