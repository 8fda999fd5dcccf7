"""Conversations and the generation pipeline: one prompt to several models, streamed."""
