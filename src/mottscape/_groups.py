"""Flattened ragged groups: one index pair per item of variable-length groups."""

from __future__ import annotations

import numpy as np


def expanded(lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group ``g`` and rank within it of each of ``sum(lens)`` items, ``lens[g]`` per group."""
    group = np.repeat(np.arange(lens.size), lens)
    return group, np.arange(group.size) - np.repeat(np.cumsum(lens) - lens, lens)
