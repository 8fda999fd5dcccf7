"""Smart assistance (issue #18 item 7): tags and a one-line summary suggested for saved notes by a
cheap model, model recommendations for a prompt, and the catalogue's latency and availability
measured from real traffic.

- ``stats``: p50 first-token latency, p50 duration and availability per model over the last 7
  days of generations (an indexed query, cached per process for a minute).
- ``recommend``: models ranked for a prompt by capability, price, the user's own ratings, the
  leaderboard in the prompt's category and those stats, each with its reasons.
- ``cheap``: one short, metered request to the cheapest usable text model (or the one the admin
  chose): hold, call, settle by its own ledger reference.
- ``notes``: the suggestion job (queued when an answer is saved as a note, or on demand), the
  accepted tags and summary, the instance and user switches.
"""
