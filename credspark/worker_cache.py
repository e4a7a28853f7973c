"""The one per-process cache of loaded models that Spark's Python workers keep between tasks.

A Python worker is reused across tasks, so a model loaded by the first task is kept under a module-level
cache keyed by the *content* of its bytes (caching by the id of a broadcast object reloaded the model on
every task: the id changes per task). The cache is bounded (oldest evicted first): a long-lived worker may
see several model versions. Nothing here imports pyspark.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["WorkerCache"]

T = TypeVar("T")


class WorkerCache(Generic[T]):
    """A bounded least-recently-used map from a content key to a loaded model.

    Args:
        size: Models kept (at least 1).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"WorkerCache size must be >= 1, got {size}")
        self.size = size
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str, build: Callable[[], T]) -> T:
        """The model cached under ``key``, built (and cached, evicting the oldest) on the first call.

        Args:
            key: Content hash of the model's bytes (or another name that changes with them).
            build: Loads the model; called only on a miss.

        Returns:
            The cached model.
        """
        model = self._items.get(key)
        if model is not None:
            self._items.move_to_end(key)
            return model
        model = build()
        self._items[key] = model
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return model

    def clear(self) -> None:
        """Forget every cached model (tests)."""
        self._items.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
