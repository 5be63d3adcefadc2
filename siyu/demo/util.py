"""Vectorised helpers for the demo generator: random streams and strings, sampling, time, CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, reduce
from pathlib import Path

import numpy as np

DAY = 86_400
OFFSET = "+08:00"  # brand-local Asia/Shanghai has no DST, so every timestamp carries +08:00
ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
WECHAT_ID = ALNUM + b"-_"
LOWER_ALNUM = b"abcdefghijklmnopqrstuvwxyz0123456789"


def stream(seed: int, stage: int) -> np.random.Generator:
    """An independent generator per stage: editing one stage's draws leaves the others alone."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stage,)))


def tokens(
    rng: np.random.Generator, n: int, prefix: str, length: int, alphabet: bytes
) -> np.ndarray:
    """`n` strings of `prefix` followed by `length` random characters of `alphabet`."""
    head = prefix.encode()
    buf = np.empty((n, len(head) + length), dtype=np.uint8)
    buf[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    alpha = np.frombuffer(alphabet, dtype=np.uint8)
    buf[:, len(head) :] = alpha[rng.integers(0, len(alpha), size=(n, length))]
    width = buf.shape[1]
    return buf.view(f"S{width}").ravel().astype(f"U{width}")


def zpad(numbers: np.ndarray, width: int) -> np.ndarray:
    text = np.asarray(numbers, dtype=np.int64).astype("U")
    return np.strings.zfill(text, width) if len(text) else text


def cat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise string concatenation of arrays and scalars."""
    return reduce(np.strings.add, (np.asarray(p) for p in parts))


def pick(rng: np.random.Generator, pool: Sequence[str], n: int, p: Sequence[float] | None = None):
    weights = None if p is None else np.asarray(p, dtype=float) / np.sum(p)
    return np.asarray(pool)[rng.choice(len(pool), size=n, p=weights)]


def choice_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category per row of an (n, k) weight matrix; every row needs a positive total."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)


def unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """`n` distinct integers in [low, high), in random order."""
    return low + rng.choice(high - low, size=n, replace=False)


def run_rank(sorted_keys: np.ndarray) -> np.ndarray:
    """0, 1, 2 … within each run of equal values of an already sorted key."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


def first_of_runs(*keys: np.ndarray) -> np.ndarray:
    """Indices keeping the first row of every distinct key tuple (rows in key order)."""
    order = np.lexsort(keys[::-1])
    if len(order) == 0:
        return order
    same = np.ones(len(order) - 1, dtype=bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    return order[np.r_[True, ~same]]


def time_of_day(rng: np.random.Generator, n: int, hour_weights: Mapping[int, float]) -> np.ndarray:
    """Seconds after midnight, hours drawn from `hour_weights`, minutes and seconds uniform."""
    hours = np.fromiter(hour_weights.keys(), dtype=np.int64)
    w = np.fromiter(hour_weights.values(), dtype=float)
    return rng.choice(hours, size=n, p=w / w.sum()) * 3600 + rng.integers(0, 3600, size=n)


@cache
def _clock_text() -> np.ndarray:
    """'HH:MM:SS+08:00' for every second of a day."""
    s = np.arange(DAY)
    return cat(zpad(s // 3600, 2), ":", zpad(s // 60 % 60, 2), ":", zpad(s % 60, 2), OFFSET)


@dataclass(frozen=True)
class Clock:
    """The data range: `days` brand-local days from `start`; times are seconds since its midnight."""

    start: date
    days: int

    @property
    def end_s(self) -> int:
        return self.days * DAY

    def weekday(self, day: np.ndarray) -> np.ndarray:
        return (self.start.weekday() + day) % 7

    def day_of(self, when: date) -> int:
        return (when - self.start).days

    def timestamps(self, secs: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
        """ISO 8601 with the +08:00 offset; rows flagged `missing` become empty."""
        secs = np.asarray(secs, dtype=np.int64)
        if len(secs) == 0:
            return np.zeros(0, dtype="U25")
        # Join a per-day and a per-second-of-day string table: much faster than formatting
        # every timestamp, and the tables are small.
        day, second = np.divmod(secs, DAY)
        first = int(day.min())
        day_text = np.strings.add(self.dates(np.arange(first, int(day.max()) + 1)), "T")
        text = np.strings.add(day_text[day - first], _clock_text()[second])
        return text if missing is None else np.where(missing, "", text)

    def dates(self, day: np.ndarray) -> np.ndarray:
        base = np.datetime64(self.start, "D")
        return np.datetime_as_string(
            base + np.asarray(day, dtype=np.int64).astype("timedelta64[D]")
        )


def write_csv(path: Path, columns: Mapping[str, np.ndarray | Sequence]) -> int:
    """Write one interchange file (UTF-8, header row, LF line ends); returns the data rows."""
    lists = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns.values()]
    rows = len(lists[0]) if lists else 0
    if any(len(c) != rows for c in lists):
        raise ValueError(f"{path.name}: columns of unequal length")
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(list(columns))
        writer.writerows(zip(*lists, strict=True))
    return rows
