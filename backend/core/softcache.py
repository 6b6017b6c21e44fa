"""A cache that is only ever a shortcut: when Redis cannot be reached, the value is computed
(and not stored) instead of failing the page. The results pages use it, so they keep working,
slower, while Redis is down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

T = TypeVar("T")
logger = logging.getLogger(__name__)


def get_or_compute(key: str, compute: Callable[[], T], seconds: int) -> T:
    try:
        found = cache.get(key)
    except Exception:  # any client or connection error: the cache is only a shortcut
        logger.warning("cache unavailable: computing %s without it", key, exc_info=True)
        return compute()
    if found is not None:
        return found  # type: ignore[no-any-return]
    value = compute()
    try:
        cache.set(key, value, seconds)
    except Exception:
        logger.warning("cache unavailable: %s not stored", key, exc_info=True)
    return value
