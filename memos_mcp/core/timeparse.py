"""Parsing of the times callers send: ISO 8601, epoch seconds or milliseconds, and the
conversational forms of chat logs ("1:56 pm on 8 May, 2023")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_FORMATS = (
    "%I:%M %p on %d %B, %Y",
    "%I:%M %p on %d %b, %Y",
    "%d %B %Y",
    "%d %B, %Y",
    "%B %d, %Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
)
_EPOCH_MS_THRESHOLD = 1e11  # larger numbers are milliseconds (1e11 s is the year 5138)


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware datetime (naive input is taken as UTC), or None for empty input.
    Raises ValueError, so that pydantic validators report the field it came from."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > _EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:  # inf, nan, or beyond the calendar
            raise ValueError(f"{value!r} is not a time in range") from exc
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_time(float(text))
        except ValueError:
            pass
        try:
            return parse_time(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            pass
        for fmt in _FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
    raise ValueError(f"cannot read {value!r} as a time; use ISO 8601 or epoch seconds")


def to_epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)
