"""Looking at results: evaluate rules on fresh or held-out tasks, compare runs, draw plots."""
