"""Distributed mode: tracking spread over many machines through a broker (issue 14).

Dramatiq on Redis carries the jobs (see docs/scaling.md for why); Redis also holds the
fleet-wide per-host limiter (`limiter`) and the results (`results`). Workers
(`worker`, `termshift worker --broker URL`) fetch, render and extract; the coordinator
hands out jobs and is the only writer of the archive. Nothing here is imported by the
single-machine path: `termshift track` without a broker never loads Dramatiq or Redis.
"""
