from flaskr.bounded_cache import BoundedCache, size_of


def test_bytes_bound_the_entries_kept() -> None:
    cache = BoundedCache(max_bytes=8 * 10_000)
    for i in range(20):
        assert cache.put(i, "x" * 9_000)
    assert cache.bytes <= cache.max_bytes and len(cache) < 20
    assert cache.get(0) is None and cache.get(19) == "x" * 9_000


def test_the_least_recently_used_goes_first() -> None:
    cache = BoundedCache(max_bytes=10**6, max_entries=2)
    cache.put("a", "1")
    cache.put("b", "2")
    cache.get("a")
    cache.put("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("1", None, "3")


def test_an_entry_over_an_eighth_of_the_budget_is_not_kept() -> None:
    cache = BoundedCache(max_bytes=80_000)
    cache.put("small", "kept")
    assert not cache.put("huge", "x" * 10_000)
    assert cache.get("huge") is None and cache.get("small") == "kept"


def test_replacing_an_entry_counts_it_once() -> None:
    cache = BoundedCache(max_bytes=10**6)
    for body in ("x" * 1_000, "y" * 2_000):
        cache.put("page", body)
    assert len(cache) == 1
    assert cache.bytes == size_of("page") + size_of("y" * 2_000)


def test_size_counts_what_a_view_returns() -> None:
    body = "€" * 1_000  # beyond Latin-1: CPython holds two bytes a character
    page = (body, 200, {"Content-Type": "application/atom+xml"})
    assert size_of(body) > 2_000
    assert size_of(page) > size_of(body) + size_of("application/atom+xml")
