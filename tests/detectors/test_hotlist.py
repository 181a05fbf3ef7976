"""Hotlist matching: exact plates, OCR confusions with their quality, province kept, expiry, RFID tags."""

from __future__ import annotations

from datetime import date

from detectors.hotlist import HotlistIndex, canonical_plate, normalise_tag
from watchpost.store import HotlistEntryRow

TODAY = date(2026, 12, 1)


def _index(*values: str, expires: date | None = None, plates: bool = True) -> HotlistIndex:
    return HotlistIndex(
        [HotlistEntryRow(i, "plates", v, "stolen", "test", expires) for i, v in enumerate(values, 1)], plates=plates
    )


def test_an_exact_read_matches_with_full_score():
    """A read equal to a listed plate is an exact match, score 1."""
    match = _index("浙A12345").match("浙A12345", on=TODAY, max_confusions=1)
    assert match is not None and match.quality == "exact" and match.score == 1.0 and match.confusions == ()


def test_one_ocr_confusion_matches_and_says_which_character():
    """浙A1234S read for 浙A12345 matches as an OCR confusion naming position, read and listed characters."""
    match = _index("浙A12345").match("浙A1234S", on=TODAY, max_confusions=1)
    assert match is not None and match.quality == "ocr_confusion"
    assert match.confusions == ((6, "S", "5"),) and match.score < 1.0


def test_every_confusion_group_is_recognised():
    """0/O/D/Q, 1/I, 8/B, 2/Z and 5/S each confuse; other pairs do not."""
    index = _index("苏E8Q8Z2")
    for read in ("苏E8Q8Z2", "苏EBQ8Z2", "苏E808Z2", "苏E8D8Z2", "苏E8O8Z2", "苏E8Q822"):
        assert index.match(read, on=TODAY, max_confusions=1) is not None, read
    assert index.match("苏E8Q8Z3", on=TODAY, max_confusions=1) is None
    assert _index("京A11111").match("京AI1111", on=TODAY, max_confusions=1) is not None


def test_more_confusions_than_allowed_do_not_match():
    """Two confused characters are refused when one is allowed, accepted when two are."""
    index = _index("浙A12345")
    assert index.match("浙AI234S", on=TODAY, max_confusions=1) is None
    assert index.match("浙AI234S", on=TODAY, max_confusions=2) is not None


def test_the_province_character_must_agree():
    """The same letters and digits under another province are a different vehicle."""
    assert _index("浙A12345").match("沪A12345", on=TODAY, max_confusions=1) is None
    assert canonical_plate("浙BOS") == "浙805"


def test_an_expired_entry_no_longer_matches():
    """An entry past its expiry date raises nothing; on its last day it still does."""
    index = _index("浙A12345", expires=date(2026, 11, 30))
    assert index.match("浙A12345", on=TODAY, max_confusions=1) is None
    assert index.match("浙A12345", on=date(2026, 11, 30), max_confusions=1) is not None


def test_rfid_tags_match_exactly_whatever_the_case_and_separators():
    """Tags are compared upper-case without separators, and never by OCR confusion."""
    index = HotlistIndex(
        [HotlistEntryRow(1, "rfid_tags", "E2801160600002084A6B3C1D", "stolen", "", None)], plates=False
    )
    assert normalise_tag("e2:80:11:60") == "E2801160"
    assert index.match("e2801160-600002084a6b3c1d", on=TODAY, max_confusions=1) is not None
    assert index.match("E2801160600002084A6B3C1O", on=TODAY, max_confusions=1) is None
