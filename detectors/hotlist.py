"""Hotlist matching: plates exactly or through OCR confusions, e-bike RFID tags exactly.

Plate readers confuse 0/O/D/Q, 1/I, 8/B, 2/Z and 5/S. A read matches a listed plate when
both have the same length, the same province character, and differ only in confusable
characters, at most ``max_confusions`` of them. Each confusion lowers the match score, and
the alert says which characters differed, so an operator can judge the hit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from watchpost.store import HotlistEntryRow

__all__ = ["CONFUSABLE", "HotlistIndex", "Match", "canonical_plate", "normalise_tag"]

# Each confusable character -> the representative of its group.
CONFUSABLE = {"O": "0", "D": "0", "Q": "0", "I": "1", "B": "8", "Z": "2", "S": "5"}
_CANON = str.maketrans(CONFUSABLE)
_CONFUSION_PENALTY = 0.15


def canonical_plate(plate: str) -> str:
    """The plate with every confusable character replaced by its group's representative.

    The first character is kept as it is when it is not ASCII: the province (浙, 苏...) is
    never confused with a Latin letter or digit.
    """
    if plate and not plate[0].isascii():
        return plate[0] + plate[1:].translate(_CANON)
    return plate.translate(_CANON)


def normalise_tag(tag: str) -> str:
    """An RFID tag id as stored: hex upper-case, separators dropped."""
    return "".join(c for c in tag.upper() if c.isalnum())


@dataclass(frozen=True, slots=True)
class Match:
    """A read that hit a hotlist entry, and how well."""

    entry: HotlistEntryRow
    read: str
    quality: str  # "exact" or "ocr_confusion"
    confusions: tuple[tuple[int, str, str], ...]  # (position, read character, listed character)
    score: float  # 1.0 exact, less per confusion

    def as_detail(self) -> dict[str, object]:
        return {
            "hotlist_entry_id": self.entry.entry_id,
            "listed": self.entry.value,
            "read": self.read,
            "reason": self.entry.reason,
            "owner": self.entry.owner,
            "expires": self.entry.expires.isoformat() if self.entry.expires else None,
            "match_quality": self.quality,
            "match_score": self.score,
            "confusions": [{"position": p, "read": r, "listed": c} for p, r, c in self.confusions],
        }


class HotlistIndex:
    """One list's entries, indexed for exact and confusion lookups."""

    def __init__(self, entries: Iterable[HotlistEntryRow], *, plates: bool) -> None:
        self.plates = plates
        self._exact: dict[str, HotlistEntryRow] = {}
        self._canon: dict[str, list[HotlistEntryRow]] = {}
        for entry in entries:
            value = entry.value if plates else normalise_tag(entry.value)
            self._exact[value] = entry
            if plates:
                self._canon.setdefault(canonical_plate(value), []).append(entry)

    def __len__(self) -> int:
        return len(self._exact)

    def match(self, read: str, *, on: date, max_confusions: int) -> Match | None:
        """The best live entry ``read`` hits on day ``on``, or None."""
        value = read if self.plates else normalise_tag(read)
        entry = self._exact.get(value)
        if entry is not None and _live(entry, on):
            return Match(entry=entry, read=read, quality="exact", confusions=(), score=1.0)
        if not self.plates or max_confusions == 0:
            return None
        best: Match | None = None
        for candidate in self._canon.get(canonical_plate(value), ()):
            if not _live(candidate, on) or len(candidate.value) != len(value):
                continue
            diffs = tuple((i, r, c) for i, (r, c) in enumerate(zip(value, candidate.value, strict=True)) if r != c)
            if not diffs or len(diffs) > max_confusions:
                continue
            score = round(1.0 - _CONFUSION_PENALTY * len(diffs), 2)
            if best is None or score > best.score:
                best = Match(entry=candidate, read=read, quality="ocr_confusion", confusions=diffs, score=score)
        return best


def _live(entry: HotlistEntryRow, on: date) -> bool:
    return entry.expires is None or on <= entry.expires
