"""What the consume step wrote for one partition: the counts and offsets its XCom reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionStats:
    """What was written for one partition (offsets of written records only)."""

    topic: str
    partition: int
    count: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    dead_letters: int = 0
    outside_window: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def wrote(self, offset: int) -> None:
        if self.first_offset is None:
            self.first_offset = offset
        self.last_offset = offset
        self.count += 1

    def as_dict(self) -> dict[str, int | str | None]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "count": self.count,
            "dead_letter_count": self.dead_letters,
            "outside_window_count": self.outside_window,
        }
