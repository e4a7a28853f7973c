import pytest

from credspark.worker_cache import WorkerCache


def test_builds_once_per_key_keeps_the_most_recent_and_evicts_the_oldest():
    cache = WorkerCache(2)
    built = []

    def build(key):
        built.append(key)
        return f"model {key}"

    assert cache.get("a", lambda: build("a")) == "model a"
    assert cache.get("a", lambda: build("a")) == "model a"
    cache.get("b", lambda: build("b"))
    cache.get("a", lambda: build("a"))  # a is now the most recent
    cache.get("c", lambda: build("c"))  # evicts b
    assert built == ["a", "b", "c"] and "b" not in cache and "a" in cache and len(cache) == 2
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="size"):
        WorkerCache(0)


def test_a_failed_build_caches_nothing():
    cache = WorkerCache(1)

    def fail():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.get("k", fail)
    assert "k" not in cache and cache.get("k", lambda: 3) == 3
