"""The one clock: a spec's snapshot date, and the one way to read and write a UTC time.

Every timestamp envgen writes into an artifact (lock, tree mtimes, tar
entries, image configs, SIF and squashfs headers, bundles) derives from the
snapshot date, never from the wall clock.  :class:`SnapshotDate` is that date;
:func:`parse_utc` and :func:`format_utc` are the only parser and formatter of
RFC 3339 UTC times.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

UTC = dt.UTC


def parse_utc(value: Any) -> dt.datetime | None:
    """An aware UTC datetime (seconds precision) from a TOML datetime or an RFC 3339 string, else None.

    A date without a time, a naive time, or a non-zero UTC offset is refused
    (None): a snapshot date must say exactly which instant it means.
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        return None
    if value.utcoffset() != dt.timedelta(0):
        return None
    return value.astimezone(UTC).replace(microsecond=0)


def format_utc(value: dt.datetime) -> str:
    """RFC 3339 UTC with a Z, seconds precision: ``2025-05-08T00:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SnapshotDate(dt.datetime):
    """The time machine's setting: an aware UTC instant, whole seconds.

    A :class:`datetime.datetime`, so it compares with upload times directly;
    adds the forms envgen writes: :attr:`iso` (RFC 3339), :attr:`epoch`
    (``SOURCE_DATE_EPOCH``, tar and filesystem times) and :attr:`compact`
    (snapshot.debian.org's ``20250508T000000Z``).
    """

    @classmethod
    def parse(cls, value: Any) -> SnapshotDate:
        d = value if isinstance(value, SnapshotDate) else parse_utc(value)
        if d is None:
            raise ValueError(f"not an RFC 3339 UTC time such as 2025-05-08T00:00:00Z: {value!r}")
        return cls(d.year, d.month, d.day, d.hour, d.minute, d.second, tzinfo=UTC)

    @classmethod
    def from_epoch(cls, epoch: int) -> SnapshotDate:
        return cls.parse(dt.datetime.fromtimestamp(int(epoch), UTC))

    @property
    def iso(self) -> str:
        return format_utc(self)

    @property
    def epoch(self) -> int:
        return int(self.timestamp())

    @property
    def compact(self) -> str:
        return self.strftime("%Y%m%dT%H%M%SZ")

    def __str__(self) -> str:
        return self.iso

    def __reduce__(self):  # pickles (and copies) as a SnapshotDate, not a plain datetime
        return (SnapshotDate.parse, (self.iso,))


def today() -> SnapshotDate:
    """Today's 00:00:00Z: the default snapshot date of ``envgen init`` and ``envgen update`` (a wall-clock reading,
    made once, written into the spec, and never into an artifact)."""
    now = dt.datetime.now(UTC)
    return SnapshotDate(now.year, now.month, now.day, tzinfo=UTC)


def parse_date_option(value: str) -> SnapshotDate | None:
    """``--date``: ``2025-05-08`` (that day's 00:00:00Z) or an RFC 3339 UTC time; None if it is neither."""
    value = value.strip()
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        d = parse_utc(value)
        return SnapshotDate.parse(d) if d is not None else None
    return SnapshotDate(day.year, day.month, day.day, tzinfo=UTC)
