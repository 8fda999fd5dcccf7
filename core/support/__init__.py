"""Support tickets: a user opens a ticket and follows its thread; the operator answers from the
console queue (replies the user sees, internal notes they never do), assigns, closes, reopens."""
