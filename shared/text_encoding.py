"""The text encoding of an uploaded file: named by the client, or decided from its first bytes.

- A name is any text encoding Python knows, by its Python or its WHATWG label (Python's
  meaning first: `latin1` is ISO-8859-1 here, not windows-1252). For `shift_jis`, `euc-kr`,
  `big5` and `gb2312`/`gbk` the file is read with the superset the WHATWG standard means by
  that label (cp932, cp949, big5hkscs, gb18030): every file the narrow codec reads is read
  the same, and the Windows extensions too.
- Undeclared, the decision is made on the first `SNIFF_BYTES`: a BOM; else UTF-8 if they are
  valid UTF-8; else Firefox's detector (chardetng, which `charset-normalizer` does not match
  on Latin-script files: see docs/rules.md), checked against the readings of the legacy
  encodings it is most often confused with. The reading with the fewest implausible
  characters (a symbol or a control inside a word) wins; chardetng's guess wins a tie. When
  it does not win, or a tie leaves two different texts, the file is refused
  (`EncodingUndetermined`) with the candidates, before anything is stored.
- The whole stream is then decoded strictly: a byte that is not text in the chosen encoding
  is an error at its line, whatever was decided.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from typing import Literal

import chardetng_py
import msgspec
import webencodings

DecidedBy = Literal["declared", "charset", "bom", "detected"]

# Codecs that are not a file's text encoding, though Python can decode with them.
_REFUSED = {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"}
# Python codec → the WHATWG superset read in its place (and named by the narrow label).
_SUPERSETS = {
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
# Single-byte encodings whose readings of one file are easily confused; when the detector
# picks one of them, the others' readings are weighed too.
_CONFUSABLE = (
    "cp1252",
    "iso8859-15",
    "cp1250",
    "iso8859-2",
    "cp1257",
    "cp1254",
    "cp1251",
    "koi8-r",
    "koi8-u",
)
# Non-ASCII characters the detector needs to choose between readings that are all plausible.
MIN_EVIDENCE = 5
# Bytes where KOI8-U and KOI8-R differ (Ukrainian letters in one, box drawing in the other).
_KOI8_U_ONLY = re.compile(rb"[\xa4\xa6\xa7\xad\xb4\xb6\xb7\xbd]")


class Encoding(msgspec.Struct, frozen=True):
    name: str  # public name: "utf-8", "windows-1252", "shift_jis", "koi8-r", …
    codec: str  # the Python codec that reads it


class Decision(msgspec.Struct, frozen=True):
    """How the encoding of an import was decided (shown with the import)."""

    encoding: Encoding
    decided_by: DecidedBy
    confidence: float | None = None  # detected: the share of plausible non-ASCII characters


class EncodingUndetermined(Exception):
    """The first bytes do not say which encoding the file is in."""

    def __init__(self, candidates: list[str], reason: str) -> None:
        super().__init__(reason)
        self.candidates = candidates


def _public(codec: str) -> str:
    name = codec.lower().replace("_", "-")
    if match := re.fullmatch(r"cp(125\d)", name):
        return f"windows-{match[1]}"
    if match := re.fullmatch(r"iso8859-(\d+)", name):
        return f"iso-8859-{match[1]}"
    return {
        "utf-8-sig": "utf-8",
        "utf-16-le": "utf-16le",
        "utf-16-be": "utf-16be",
        "utf-32-le": "utf-32le",
        "utf-32-be": "utf-32be",
        "gbk": "gb18030",
        "gb2312": "gb18030",
        # the WHATWG supersets go by the narrow codec's name
        "cp932": "shift_jis",
        "cp949": "euc_kr",
        "big5hkscs": "big5",
    }.get(name, codec.lower())


def lookup(label: str) -> Encoding | None:
    """The encoding a label names (Python's name, else WHATWG's), or None."""
    label = label.strip()
    try:
        info = codecs.lookup(label)
    except LookupError:
        found = webencodings.lookup(label)
        if found is None:
            return None
        info = found.codec_info
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("_", "-") in _REFUSED:
        return None
    if info.name == "utf-8":
        return Encoding("utf-8", "utf-8-sig")  # a BOM is not part of the data
    return Encoding(_public(info.name), _SUPERSETS.get(info.name, info.name))


UTF8 = Encoding("utf-8", "utf-8-sig")
UTF16 = Encoding("utf-16", "utf-16")


def first_bad_utf8(sample: bytes) -> int | None:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def detect(sample: bytes, *, final: bool) -> Decision | None:
    """The encoding of a file that starts with `sample` (all of it when `final`). None: it
    is broken UTF-8 or binary (the strict decoding reports where). Raises
    EncodingUndetermined when the legacy encodings' readings leave a doubt."""
    if sample.startswith(codecs.BOM_UTF8):
        return Decision(UTF8, "bom")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Decision(UTF16, "bom")
    bad = first_bad_utf8(sample)
    if bad is None:
        return Decision(UTF8, "detected", 1.0)
    if not sample[:bad].isascii() or b"\x00" in sample:
        return None  # valid multi-byte UTF-8 before the bad byte: broken UTF-8; or binary
    if not final:  # a character may be cut by the sample's end: detect on whole lines
        sample = sample[: max(sample.rfind(b"\n"), sample.rfind(b"\r")) + 1] or sample
    detector = chardetng_py.EncodingDetector()
    detector.feed(sample, last=final)
    label, ahead = detector.guess_assess(tld=None, allow_utf8=False)
    guess = lookup(label)
    if guess is None:
        return None
    return _weighed(sample, guess, ahead=ahead)


def _reading(sample: bytes, codec: str) -> str | None:
    try:
        return sample.decode(codec)
    except UnicodeDecodeError:
        return None


_ALPHABETS = ("LATIN", "CYRILLIC", "GREEK")  # scripts that never mix inside a word


def _script(char: str) -> str:
    """LATIN, CYRILLIC, GREEK, or another (the first word of the character's name)."""
    return "LATIN" if char.isascii() else unicodedata.name(char, "?").split(" ", 1)[0]


def _mixed(a: str, b: str) -> bool:
    """Two letters side by side from different alphabets (`cafй`)."""
    if not (a.isalpha() and b.isalpha()):
        return False
    x, y = _script(a), _script(b)
    return x != y and x in _ALPHABETS and y in _ALPHABETS


def _oddities(text: str) -> tuple[int, int]:
    """(implausible characters, non-ASCII characters). Implausible: a control, an
    unassigned or private-use code point, U+00A4 ¤, a symbol or number sign touching a
    letter, or a letter beside a letter of another alphabet (`cafй`)."""
    odd = strange = 0
    for i, char in enumerate(text):
        if char.isascii():
            continue
        strange += 1
        category = unicodedata.category(char)
        before = text[i - 1] if i > 0 else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if char == "\xa4" or category in ("Cc", "Cn", "Co"):
            odd += 1
        elif category[0] in "SN":
            odd += before.isalpha() or after.isalpha()
        elif category[0] == "L":
            odd += _mixed(before, char) or _mixed(char, after)
    return odd, strange


def _weighed(sample: bytes, guess: Encoding, *, ahead: bool) -> Decision:
    """Check the detector's guess against the other readings of a confusable encoding."""
    text = _reading(sample, guess.codec)
    if text is None:
        raise EncodingUndetermined([guess.name], f"the file is not valid {guess.name}")
    if guess.codec == "koi8-u" and not _KOI8_U_ONLY.search(sample):
        guess = Encoding("koi8-r", "koi8-r")  # the same text: name the common one
    odd, strange = _oddities(text)
    readings: dict[str, tuple[int, str]] = {}  # text → (oddities, encoding), first name wins
    readings[text] = (odd, guess.name)
    if guess.codec not in _CONFUSABLE:
        if not ahead:
            raise EncodingUndetermined(
                [guess.name], f"the file may be {guess.name}, but the detector is not sure"
            )
        return Decision(guess, "detected", round(1 - odd / max(strange, 1), 3))
    for codec in _CONFUSABLE:
        other = _reading(sample, codec)
        if other is not None and other not in readings:
            readings[other] = (_oddities(other)[0], _public(codec))
    fewest = min(o for o, _ in readings.values())
    best = [(name, t) for t, (o, name) in readings.items() if o == fewest]
    confidence = round(1 - fewest / max(strange, 1), 3)
    if odd == fewest and ahead and (len(best) == 1 or strange >= MIN_EVIDENCE):
        return Decision(guess, "detected", confidence)
    if len(best) == 1:
        name = best[0][0]
        found = lookup(name)
        assert found is not None
        return Decision(found, "detected", confidence)
    names = [name for name, _ in best]
    raise EncodingUndetermined(
        names,
        "the file's encoding cannot be told from its first bytes: it reads as different"
        f" text in {', '.join(names)}",
    )
