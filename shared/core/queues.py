"""The names of Driftless's Storage queues (function_app.py repeats them as literals; a test keeps them equal), and
what Azure Tables refuses in the keys of the status table."""
import re

RECONCILE_QUEUE = "reconcile-jobs"
"""Reconcile jobs of the timer: one Target each (and their retries)."""
PUSH_QUEUE = "reconcile-pushes"
"""Reconcile jobs of pushes and manual requests (and their retries): their own queue and trigger, so a push never
waits behind the timer's backlog (the Target's lease still runs one pass at a time)."""
PHASE_QUEUE = "phase-events"
"""Flux / Argo CD phase events and Driftless's own pass events, on their way to CI."""
IMAGE_QUEUE = "image-updates"
"""Image update jobs: one opted-in manifest each."""
PREVIEW_QUEUE = "plan-previews"
"""Plan preview jobs: one pull request head each (never behind a reconcile, never a Target's lease)."""
ROLLOUT_QUEUE = "rollout-steps"
"""Rollout step jobs: one step (or analysis) of one app's progressive delivery each, delayed until it is due."""
POISON_SUFFIX = "-poison"
"""Where a message that can never succeed is parked, as the Functions host names it."""
TABLE_KEY_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
"""Characters Azure Tables refuses in a PartitionKey or RowKey."""
