"""Announcements: the operator tells users about changes with a banner (info or warning) shown
between a start and an end time; each user dismisses it once, and a list page keeps them all."""
