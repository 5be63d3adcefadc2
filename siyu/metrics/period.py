"""A reporting period: [from, to) in brand-local days, and the UTC instants that bound it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FIRST_DAY = date(1970, 1, 1)  # earlier days only overflow date arithmetic (previous periods)


class PeriodError(ValueError):
    """A period the report cannot be computed for; the message names the argument."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Period:
    start_day: date
    end_day: date  # exclusive
    timezone: str

    @classmethod
    def parse(cls, start: str, end: str, timezone: str) -> Period:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PeriodError(f"timezone: unknown time zone {timezone!r}", "timezone") from None
        days = []
        for name, value in (("--from", start), ("--to", end)):
            try:
                days.append(date.fromisoformat(value))
            except (TypeError, ValueError):
                raise PeriodError(
                    f"{name}: {value!r} is not a date (YYYY-MM-DD)", name.lstrip("-")
                ) from None
        if days[0] < FIRST_DAY:
            raise PeriodError(
                f"--from {days[0]} is before {FIRST_DAY}: no data is that old", "from"
            )
        if days[0] >= days[1]:
            raise PeriodError(
                f"--from {days[0]} must be before --to {days[1]} (to is exclusive)", "to"
            )
        return cls(days[0], days[1], timezone)

    def check_started(self, today: date) -> None:
        """A period that begins after today has no data yet: say so instead of zeros."""
        if self.start_day > today:
            raise PeriodError(
                f"--from {self.start_day} is in the future (today is {today}): no data", "from"
            )

    def _instant(self, day: date) -> datetime:
        return datetime.combine(day, time(), ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def start(self) -> datetime:
        """The instant the first day begins, in UTC."""
        return self._instant(self.start_day)

    @property
    def end(self) -> datetime:
        """The instant `to` begins: the period's exclusive end, and the "as of" instant."""
        return self._instant(self.end_day)

    def params(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "from_day": self.start_day,
            "to_day": self.end_day,
        }

    def as_json(self) -> dict[str, str]:
        return {
            "from": self.start_day.isoformat(),
            "to": self.end_day.isoformat(),
            "timezone": self.timezone,
        }
