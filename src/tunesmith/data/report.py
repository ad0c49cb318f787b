"""Kept/dropped accounting: nothing is dropped without a count (``data_report.json``)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

MAX_EXAMPLES = 5


@dataclass
class DataReport:
    total: int = 0
    kept: int = 0
    truncated: int = 0
    samples: int = 0  # tokenized examples (split_turns may make several per row)
    dropped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # reason -> first locations with messages
    sources: list = field(default_factory=list)  # "name: file (format)" per dataset read
    from_cache: bool = False
    log: list | None = None  # every drop as "where: message" when set (data validate)
    last_reason: str | None = field(default=None, repr=False, compare=False)

    def drop(self, reason: str, where: str, message: str) -> None:
        self.dropped[reason] += 1
        self.last_reason = reason  # lets the streaming path attribute each drop to its row
        if self.log is not None:
            self.log.append(f"{where}: {message}")
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < MAX_EXAMPLES:
            self.examples[reason].append(f"{where}: {message}")

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        line = f"data: {self.total} rows, {self.kept} kept, {self.n_dropped} dropped"
        if self.dropped:
            line += " (" + ", ".join(f"{k}: {v}" for k, v in self.dropped.most_common()) + ")"
        if self.truncated:
            line += f", {self.truncated} truncated"
        if self.from_cache:
            line += " (tokenized data from cache)"
        return line

    def details(self) -> list[str]:
        return [loc for locs in self.examples.values() for loc in locs]

    def check(self, max_drop_ratio: float, strict: bool) -> None:
        """Fail when every row, or more than ``max_drop_ratio`` of them, was dropped."""
        first = self.details()[:3]
        where = ("; first: " + " | ".join(first)) if first else ""
        if self.total == 0:
            names = ", ".join(self.sources) or "no dataset"
            raise DataError(f"dataset is empty: no rows to train on in {names}")
        if self.kept == 0:
            names = f" of {', '.join(self.sources)}" if self.sources else ""
            raise DataError(f"all {self.total} rows{names} were dropped ({dict(self.dropped)}){where}")
        if strict and self.n_dropped:
            raise DataError(f"{self.n_dropped} bad rows and strict is set{where}")
        if self.n_dropped / self.total > max_drop_ratio:
            raise DataError(f"{self.n_dropped}/{self.total} rows dropped, over max_drop_ratio="
                            f"{max_drop_ratio}{where}")

    def to_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "dropped": self.n_dropped,
                "dropped_by_reason": dict(self.dropped), "truncated": self.truncated,
                "samples": self.samples, "first_errors": self.examples, "sources": self.sources,
                "from_cache": self.from_cache}

    @classmethod
    def from_dict(cls, data: dict) -> "DataReport":
        """The report of a cached run (``to_dict``'s inverse)."""
        return cls(total=data["total"], kept=data["kept"], truncated=data["truncated"],
                   samples=data["samples"], dropped=Counter(data["dropped_by_reason"]),
                   examples=dict(data["first_errors"]), sources=list(data.get("sources", [])))

    def save(self, output_dir: str | Path) -> Path:
        path = Path(output_dir) / "data_report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path
