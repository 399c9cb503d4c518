import json
import os
import time

import pytest

import hwlib
from agn.search import SearchSpace


def synthetic_error(assignment):
    """A deterministic stand-in for accuracy loss: grows with the power each layer saves."""
    loss = sum((1 - hwlib.get(s).relative_power) ** 2 * (i + 1)
               for i, s in enumerate(assignment.values()))
    return min(1.0, 0.01 + loss)


class LoggingScore:
    """Synthetic score that logs every call (one JSON line) and can be slowed down."""

    def __init__(self, log_path, delay=0.0):
        self.log_path, self.delay = str(log_path), delay

    def __call__(self, assignment):
        time.sleep(self.delay)
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(sorted(assignment.items())) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return synthetic_error(assignment)


@pytest.fixture
def space():
    return SearchSpace.build(["conv1", "conv2", "conv3", "fc"], [4000, 8000, 2000, 500],
                             "marlin:*")
