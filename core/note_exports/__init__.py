"""Exports of notes, comparisons, conversations and folders through the exporter plugins."""
