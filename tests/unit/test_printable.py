"""Free text: the OpenAPI pattern documents exactly what the API accepts."""

from __future__ import annotations

import re

from accounts.schemas import RiderIn

PATTERN = re.compile(RiderIn.model_json_schema()["properties"]["name"]["pattern"])


def accepted(name: str) -> bool:
    try:
        RiderIn(name=name, phone="1234567")
    except ValueError:
        return False
    return True


def test_the_documented_pattern_matches_what_the_api_accepts() -> None:
    """Every character up to U+3100 and a few beyond, alone, leading, trailing and inside:
    control characters anywhere but in stripped whitespace are refused, blank is refused."""
    chars = [chr(cp) for cp in (*range(0x3100), 0xFEFF, 0xFFFD, 0x1F600, 0x10FFFD)]
    disagree = [(hex(ord(ch)), text) for ch in chars
                for text in (ch, f"A{ch}", f"{ch}A", f"A{ch}B")
                if bool(PATTERN.fullmatch(text)) != accepted(text)]
    assert disagree == []
    assert not accepted("Ada\x00") and not accepted("   ") and accepted("  Zoë Ł  ")


def test_lengths_count_the_text_as_sent_and_the_surrounding_space_is_dropped() -> None:
    """The document's maxLength holds for the text sent, as the API checks it."""
    assert not accepted("A" + " " * 100) and accepted("A" + " " * 99)
    assert RiderIn(name="\u3000 Ada\t", phone="1234567").name == "Ada"
