"""Mergeable sketches (Apache DataSketches) for a key dimension past the exact bound.

An ``Aggregate`` counts client IPs, paths and user agents exactly until one dimension holds more
distinct keys than its bound (``exact_keys``, per partial and for a merge's running result). Past it
that dimension is held by a ``KeySketch``: an HLL sketch for the number of distinct keys and a
frequent-items sketch for the top-N with per-item bounds (the IP dimension adds one frequent-items
sketch each for 4xx and 5xx answers, for the per-client error figures). Both merge by their own
union, so a merge's memory is bounded by the sketches' sizes whatever the day's cardinality.

Bounds, as the library states them: the HLL estimate lies within ``HLL_STD_DEVS`` standard deviations
(about 95.4 %) of the true count, ``get_lower_bound``/``get_upper_bound``; a frequent item's true count
lies within ``[lower_bound, upper_bound]`` always (deterministic, no false negatives above the
sketch's maximum error, which is at most ``epsilon * total weight``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import datasketches  # numpy's OpenBLAS threads: see the package's __init__

from logproc_analyzer.packed_ips import PackedIpCounts

__all__ = ["FI_LG_MAX_MAP", "HLL_LG_K", "HLL_STD_DEVS", "KeySketch", "TopItem"]

HLL_LG_K = 14  # 2**14 registers: about 0.8 % relative standard error, 16 KB
HLL_STD_DEVS = 2
FI_LG_MAX_MAP = 14  # up to 12 288 counters: maximum error 3.5/12288 of the total weight (about 0.03 %)
_HLL_TYPE = datasketches.tgt_hll_type.HLL_8
_NO_FALSE_NEGATIVES = datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES

TopItem = tuple[str, int, int, int]  # key, estimate, lower bound, upper bound


def _frequent() -> Any:
    return datasketches.frequent_strings_sketch(FI_LG_MAX_MAP)


class KeySketch:
    """Distinct count and heavy hitters of one key dimension; ``errors`` only for client IPs."""

    __slots__ = ("client_errors", "distinct", "items", "server_errors")

    def __init__(self, with_errors: bool = False) -> None:
        self.distinct: Any = datasketches.hll_sketch(HLL_LG_K, _HLL_TYPE)
        self.items: Any = _frequent()
        self.client_errors: Any = _frequent() if with_errors else None
        self.server_errors: Any = _frequent() if with_errors else None

    @classmethod
    def of_counts(cls, counts: Mapping[str, int], client_errors: Mapping[str, int] | None = None,
                  server_errors: Mapping[str, int] | None = None) -> KeySketch:
        """Build the sketch of exact counters (keys are texts; ``-`` stands for absent)."""
        sketch = cls(with_errors=client_errors is not None)
        sketch.add_counts(counts, client_errors, server_errors)
        return sketch

    def add_counts(self, counts: Mapping[str, int], client_errors: Mapping[str, int] | None = None,
                   server_errors: Mapping[str, int] | None = None) -> None:
        """Add exact counters into the sketch."""
        distinct, items = self.distinct.update, self.items.update
        for keys, weights in _key_chunks(counts):
            deque(map(distinct, keys), maxlen=0)  # the loop in C: the library takes one key a call
            for key, weight in zip(keys, weights, strict=True):
                items(key, weight)
        for sketch, errors in ((self.client_errors, client_errors), (self.server_errors, server_errors)):
            if sketch is not None and errors:
                update = sketch.update
                for key, count in errors.items():
                    update(key, count)

    def merge(self, other: KeySketch) -> None:
        """Add another sketch of the same dimension into this one."""
        union = datasketches.hll_union(HLL_LG_K)
        union.update(self.distinct)
        union.update(other.distinct)
        self.distinct = union.get_result(_HLL_TYPE)
        self.items.merge(other.items)
        if self.client_errors is not None and other.client_errors is not None:
            self.client_errors.merge(other.client_errors)
            self.server_errors.merge(other.server_errors)

    # ------------------------------------------------------------------ reading
    def distinct_estimate(self) -> dict[str, Any]:
        """Return the distinct-key estimate with its bounds (about 95.4 %: two standard deviations)."""
        return {
            "estimate": round(self.distinct.get_estimate()),
            "lower_bound": int(self.distinct.get_lower_bound(HLL_STD_DEVS)),
            "upper_bound": int(-(-self.distinct.get_upper_bound(HLL_STD_DEVS) // 1)),
            "method": f"HLL (Apache DataSketches, lg_k={HLL_LG_K}): the true count lies within the bounds "
                      f"with about 95.4 % confidence ({HLL_STD_DEVS} standard deviations)",
        }

    def top(self, n: int | None) -> list[TopItem]:
        """Return the n heaviest keys by estimate (ties by key) with their bounds."""
        return top_of(self.items, n)

    def estimates(self) -> dict[str, int]:
        """Return the estimated count of every key the sketch reports (those above its maximum error)."""
        return estimates_of(self.items)

    def error_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Return the estimated 4xx and 5xx counts of the heavy hitters among clients."""
        if self.client_errors is None:
            return {}, {}
        return estimates_of(self.client_errors), estimates_of(self.server_errors)

    def max_error(self) -> int:
        """Return the most any frequent-item count here can be off by."""
        return int(self.items.get_apriori_error(FI_LG_MAX_MAP, self.items.total_weight))

    @property
    def total(self) -> int:
        return int(self.items.total_weight)

    # ------------------------------------------------------------------ partials
    def __reduce__(self) -> tuple[Any, tuple[dict[str, bytes]]]:
        # The library's sketches do not pickle; a worker's standby sketches cross the pipe in its own format.
        return KeySketch.from_bytes, (self.to_bytes(),)

    def to_bytes(self) -> dict[str, bytes]:
        """Serialise with the library's own compact formats."""
        out = {"hll": self.distinct.serialize_compact(), "items": self.items.serialize()}
        if self.client_errors is not None:
            out["client_errors"] = self.client_errors.serialize()
            out["server_errors"] = self.server_errors.serialize()
        return out

    @classmethod
    def from_bytes(cls, data: Mapping[str, bytes]) -> KeySketch:
        """Read what ``to_bytes`` wrote; ValueError (naming the part) if a sketch is corrupt."""
        sketch = cls.__new__(cls)
        try:
            sketch.distinct = datasketches.hll_sketch.deserialize(data["hll"])
            sketch.items = datasketches.frequent_strings_sketch.deserialize(data["items"])
            with_errors = "client_errors" in data
            sketch.client_errors = (datasketches.frequent_strings_sketch.deserialize(data["client_errors"])
                                    if with_errors else None)
            sketch.server_errors = (datasketches.frequent_strings_sketch.deserialize(data["server_errors"])
                                    if with_errors else None)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise ValueError(f"corrupt sketch ({type(exc).__name__}: {exc})") from None
        if sketch.distinct.lg_config_k != HLL_LG_K:
            raise ValueError(f"HLL sketch with lg_k={sketch.distinct.lg_config_k}, not {HLL_LG_K}")
        return sketch


def top_of(items: Any, n: int | None) -> list[TopItem]:
    """Return the items of a frequent-items sketch above its maximum error, heaviest first (ties by key)."""
    found: list[tuple[str, int, int, int]] = items.get_frequent_items(_NO_FALSE_NEGATIVES)
    # Up to ~12 000 items: the top-N through a bounded heap, not a sort of them all (same order).
    ranked = sorted(found, key=_heaviest) if n is None else heapq.nsmallest(n, found, key=_heaviest)
    return [(key, int(est), int(lb), int(ub)) for key, est, lb, ub in ranked]


def estimates_of(items: Any) -> dict[str, int]:
    """Return the estimate of every item of a frequent-items sketch above its maximum error (no order)."""
    return {key: int(est) for key, est, _lb, _ub in items.get_frequent_items(_NO_FALSE_NEGATIVES)}


def _key_chunks(counts: Mapping[str, int]) -> Iterable[tuple[list[str], list[int]]]:
    """Return the keys and counts in lists: a packed client table's texts a chunk at a time (made only now)."""
    if isinstance(counts, PackedIpCounts):
        return counts.text_chunks()
    return [(list(counts), list(counts.values()))]


def _heaviest(item: tuple[str, int, int, int]) -> tuple[int, str]:
    return -item[1], item[0]
