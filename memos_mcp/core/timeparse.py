"""Parsing of the times callers send: ISO 8601, epoch seconds or milliseconds, and the
conversational forms of chat logs ("1:56 pm on 8 May, 2023").

Every time that is stored must lie in ``EARLIEST`` .. ``LATEST`` (UTC): the stores keep times as
epoch seconds (float64) and read them back as Python datetimes, which end at the year 9999; a time
with an offset that lands beyond it in UTC (``9999-12-31T23:59:59-05:00``) could be written but never
read. ``parse_time`` refuses such times, so that a pydantic field names itself in the error;
``from_epoch`` reads a stored time defensively (a row written by an older version is clamped to the
range, with a warning, rather than breaking every read).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, time
from typing import Annotated, Any

from pydantic import BeforeValidator

log = logging.getLogger(__name__)

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # whole seconds: float64 rounding stays in range

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
_BASIC_DATE = re.compile(r"\d{8}")
_BARE_DATE = re.compile(r"\d{8}|\d{4}-\d{2}-\d{2}|\d{4}/\d{2}/\d{2}|\D*\d{1,2}\D+\d{4}|[A-Za-z]+ \d{1,2}, \d{4}")


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware datetime (naive input is taken as UTC) within ``EARLIEST`` .. ``LATEST``, or
    None for empty input. Numbers are epoch seconds, or milliseconds above 1e11 (also as strings); a
    string of eight digits is the ISO 8601 basic form of a date (``20231114``; ``20240230`` is refused,
    never read as epoch seconds).
    Raises ValueError, so that pydantic validators report the field it came from."""
    if value is None or value == "":
        return None
    return storable(_parse(value))


def parse_bound(value: Any, upper: bool) -> datetime | None:
    """``parse_time`` for one end of a time range: a bare date (``2026-03-02``, ``2 March 2026``) means
    the whole day, so as an ``upper`` bound it is the last microsecond of that day."""
    parsed = parse_time(value)
    if parsed is None or not upper or not isinstance(value, str) or not _BARE_DATE.fullmatch(value.strip()):
        return parsed
    end = datetime.combine(parsed.date(), time.max, parsed.tzinfo) if parsed.time() == time() else parsed
    return min(end, LATEST)


def storable(value: datetime) -> datetime:
    """``value`` (aware) when it lies in ``EARLIEST`` .. ``LATEST`` in UTC and so survives every store;
    otherwise ValueError naming the range."""
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc <= LATEST:
        raise ValueError(f"{value.isoformat()} lies outside the storable range "
                         f"{EARLIEST:%Y-%m-%dT%H:%M:%SZ} .. {LATEST:%Y-%m-%dT%H:%M:%SZ} (UTC)")
    return value


def _parse(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > _EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:  # inf, nan, or beyond the calendar
            raise ValueError(f"{value!r} lies outside the storable range of epoch times") from exc
    if isinstance(value, str):
        text = value.strip()
        if _BASIC_DATE.fullmatch(text):  # ISO 8601 basic form 20231114, not 20,231,114 epoch seconds (1970)
            try:
                return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
            except ValueError:
                raise ValueError(f"{value!r} is no date: eight digits are an ISO 8601 basic date YYYYMMDD "
                                 "(give epoch seconds as a number)") from None
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            return _parse(number)
        try:
            return _parse(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            pass
        for fmt in _FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
    raise ValueError(f"cannot read {value!r} as a time; use ISO 8601 or epoch seconds")


Time = Annotated[datetime, BeforeValidator(parse_time)]
"""A datetime field read by ``parse_time``: the same forms and the same range on every face."""


def to_epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    """A stored epoch (seconds) as a UTC datetime; a value outside the storable range (written before
    it was enforced) is clamped to it and logged, so that one row never breaks a read."""
    if value is None:
        return None
    try:
        return storable(datetime.fromtimestamp(value, UTC))
    except (OverflowError, OSError, ValueError):
        bound = LATEST if value > 0 else EARLIEST
        log.warning("a stored time %r lies outside the storable range; read as %s", value, bound.isoformat())
        return bound

