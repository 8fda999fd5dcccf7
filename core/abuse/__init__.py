"""Abuse detection: rules that flag sign-up bursts and disposable addresses, a queue of hits
with their evidence for the operator, and blocking with a reason the blocked person is told."""
