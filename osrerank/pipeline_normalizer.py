"""The normalizer of a folder's ``tokenizer.json`` as the text pipeline's graph applies it (pipeline_tokenizers.py):
runs of per-character normalizers (BertNormalizer's cleaning, lowercasing, accent stripping and CJK spacing, NFC
and the like) tabulated once at export by passing every code point through them alone, and the normalizers that
read more than one character (Replace, Strip, Prepend) as RE2 rules."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["WHITESPACE", "CharTable", "Step", "char_class", "code_points", "normalization"]

WHITESPACE = (
    "[\\t\\n\\x0b\\x0c\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
)


@dataclass(frozen=True)
class CharTable:
    """A run of per-character normalizers, tabulated: RE2 character classes of the characters it removes, turns
    into one space and surrounds with spaces (CJK), and what it makes of every other character it changes."""

    removed: str | None
    spaced: str | None
    cjk: str | None
    mapped: dict[str, str]


#: One normalization step: a per-character table, or an RE2 (pattern, rewrite) for a rule that reads more than one
#: character (Replace, Strip, Prepend).
Step = CharTable | tuple[str, str]


def normalization(document: dict) -> list[Step]:
    """The normalizer as steps: runs of per-character normalizers tabulated, the rest as RE2 rules, in order."""
    normalizer = document.get("normalizer")
    parts = normalizer.get("normalizers", []) if normalizer and normalizer["type"] == "Sequence" else [normalizer]
    steps: list[Step] = []
    run: list[dict] = []
    for part in [p for p in parts if p]:
        rules = _rules(part)
        if rules is None:
            run.append(part)
            continue
        if run:
            steps.append(_char_table(document, run))
            run = []
        steps += rules
    if run:
        steps.append(_char_table(document, run))
    return steps


def _rules(part: dict) -> list[Step] | None:
    """A normalizer that reads more than one character as RE2 rules, or None for a per-character one."""
    import re

    kind = part["type"]
    if kind == "Replace":
        pattern = part["pattern"]
        regex = pattern["Regex"] if "Regex" in pattern else re.escape(pattern["String"])
        return [(regex, part["content"].replace("\\", "\\\\"))]
    if kind == "Strip":
        return [(f"^{WHITESPACE}+", "")] * bool(part.get("strip_left")) + [(f"{WHITESPACE}+$", "")] * bool(
            part.get("strip_right")
        )
    if kind == "Prepend":
        return [("(?s)^(.)", part["prepend"].replace("\\", "\\\\") + "\\1")]
    return None


def _char_table(document: dict, normalizers: list[dict]) -> CharTable:
    """Each code point through the normalizers alone (about 2 s)."""
    from tokenizers import Tokenizer

    alone = {**document, "normalizer": {"type": "Sequence", "normalizers": normalizers}}
    normalizer = Tokenizer.from_str(json.dumps(alone)).normalizer
    removed, spaced, cjk, mapped = [], [], [], {}
    for code in code_points():
        char = chr(code)
        out = normalizer.normalize_str(char)
        if out == "":
            removed.append(code)
        elif out == " " != char:
            spaced.append(code)
        elif out == f" {char} ":
            cjk.append(code)
        elif out != char:
            mapped[char] = out
    return CharTable(char_class(removed), char_class(spaced), char_class(cjk), mapped)


def code_points() -> Iterable[int]:
    yield from range(0xD800)
    yield from range(0xE000, 0x110000)


def char_class(codes: list[int]) -> str | None:
    """An RE2 character class of code points (as ranges), or None for none."""
    if not codes:
        return None
    ranges, start, last = [], codes[0], codes[0]
    for code in codes[1:]:
        if code != last + 1:
            ranges.append((start, last))
            start = code
        last = code
    ranges.append((start, last))
    return "[" + "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]"
