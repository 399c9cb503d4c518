"""torch's CPU thread count, set only inside a context that restores it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (0 = leave the count as it is) and
    restore the previous count on the way out."""
    if threads < 0:
        raise ValueError(f"torch_threads: expected a thread count >= 0 (0 = unchanged), got "
                         f"{threads}")
    old = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        yield
    finally:
        torch.set_num_threads(old)
