"""Blind comparisons ("arena") and the leaderboard built from their votes (issue #18 item 1).

A blind comparison sends one prompt to 2-4 models through the generation pipeline and shows the
answers as "A", "B", "C" in random order; which model wrote which answer reaches the client only
after the owner votes. Votes feed a Bradley-Terry leaderboard, per user and instance-wide.
"""
