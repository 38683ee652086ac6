"""The ranges of document IDs a run goes through, as values: a part (parallel reads)
and a shard (a sharded run's task). A leaf: what they are, not how they are read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Part:
    """One range of document IDs read by a cursor of its own (parallel reads), and how
    far it is done: a resume reads each part after its own checkpoint."""

    from_id: str | None  # included; None: the range's start
    before_id: str | None  # excluded; None: the range's end
    checkpoint: str | None = None  # the last ID fully done in this part

    def to_dict(self) -> dict[str, str | None]:
        return {"from": self.from_id, "before": self.before_id, "checkpoint": self.checkpoint}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Part:
        return cls(data.get("from"), data.get("before"), data.get("checkpoint"))


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def key(self) -> str:
        return str(self.index)
