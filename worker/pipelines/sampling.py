"""Seeded sampling that shards can merge exactly: every item gets a priority from a hash of its
key, and a sample of size n is the n items of smallest priority.

A sequential generator (``torch.rand`` batch after batch, Algorithm R) gives a sample that
depends on the order and the cut of the stream, so two shards of a pass cannot combine into what
one pass gives. A priority that is a pure function of ``(seed, key)`` can: the n smallest of a
union are the n smallest of the shards' n smallest. This is the bottom-k sketch (Cohen &
Kaplan 2007); with a uniform hash it is a uniform sample without replacement.

The hash is splitmix64's finaliser (Steele et al. 2014), a bijection of 64-bit integers, so for a
fixed seed distinct keys never share a priority and the order is total: no ties to break.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["bottom_k", "hash_priorities", "position_keys"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_SIGN = np.uint64(1 << 63)
POSITION_BITS = 24  # spatial positions per image key (16.7 M: far above any layer's H × W)


def _mix(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as splitmix64 intends
        z = values + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        return z ^ (z >> np.uint64(31))


def hash_priorities(keys: Tensor, seed: int) -> Tensor:
    """``keys: [n]`` int64 (non-negative) -> int64 priorities, uniform over all 2^64 values.

    The unsigned hash is mapped to int64 by flipping its top bit, which keeps its order.
    """
    seed_mix = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    hashed = _mix(keys.detach().cpu().numpy().astype(np.uint64) ^ seed_mix)
    return torch.from_numpy((hashed ^ _SIGN).view(np.int64)).to(keys.device)


def position_keys(image_ids: Tensor, n_positions: int) -> Tensor:
    """One key per (image, spatial position): ``[batch] -> [batch * n_positions]``, row-major."""
    if n_positions >= 1 << POSITION_BITS:
        raise ValueError(f"{n_positions} positions per image exceed the key's {POSITION_BITS} bits")
    positions = torch.arange(n_positions, dtype=torch.int64, device=image_ids.device)
    return ((image_ids[:, None] << POSITION_BITS) | positions[None, :]).reshape(-1)


def bottom_k(priorities: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` smallest priorities, in ascending order of priority."""
    order = torch.argsort(priorities)
    return order[:k]
