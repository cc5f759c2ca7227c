"""Which worker of a multi-worker training job this process is, from TensorFlow's TF_CONFIG.

TF_CONFIG is TensorFlow's own convention (see docs/scale.md): a JSON object with the
`cluster` (host:port of every worker, and optionally of a `chief`) and this process's `task`.
The chief is the task of type "chief", or worker 0 when the cluster names none. Parsing it
here, without TensorFlow, lets the training code decide what only the chief does.
"""

import json
import os
from dataclasses import dataclass

from lablr.core.errors import LablrError


@dataclass(frozen=True)
class Role:
    index: int  # this worker's place in the job, the chief first
    count: int  # workers in the job
    is_chief: bool


def role(environ=os.environ) -> Role | None:
    """This process's role in the job TF_CONFIG describes, or None when it is not set."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        chiefs, workers = list(config["cluster"].get("chief", [])), list(config["cluster"].get("worker", []))
        kind, index = config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LablrError('TF_CONFIG is not a TensorFlow cluster description like {"cluster": {"worker": '
                         '["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}.') from None
    tasks = [("chief", i) for i in range(len(chiefs))] + [("worker", i) for i in range(len(workers))]
    if (kind, index) not in tasks:
        raise LablrError(f"TF_CONFIG names this task {kind} {index}, which its cluster does not list.")
    return Role(index=tasks.index((kind, index)), count=len(tasks), is_chief=tasks.index((kind, index)) == 0)


def worker_part(images, index: int, count: int):
    """The images worker `index` of `count` trains on: one contiguous block of the set, so each
    worker reads its own shard files (or its own rows of them), never the others'."""
    if images.count < count:
        raise LablrError(f"{images.count} training images cannot be shared among {count} workers.")
    keys = images.keys
    start, end = index * len(keys) // count, (index + 1) * len(keys) // count
    return images.subset(keys[start:end])
