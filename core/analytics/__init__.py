"""The operator's analytics (issue #19 item 8): active users, the activation funnel, cohort
retention, generations and tokens per model, AI cost against revenue, storage growth. Read from
rollup tables that a scheduled task rebuilds from the app's own data (no tracker)."""
