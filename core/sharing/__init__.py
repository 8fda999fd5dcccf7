"""Sharing notes, folders, files and conversations; notifications; comments with @mentions;
the activity feed of a note.

Who may see or change a shared object is decided in one place, ``multinotes.sharing.access``.
"""
