"""Bytes from a source file -> clean Unicode text.

UTF-8 (with or without BOM) first; UTF-8 with a few stray legacy bytes (a file edited in an
old editor) stays UTF-8, the stray bytes read as Windows-1252; otherwise the legacy encoding
the bytes most likely are.
charset-normalizer guesses well for non-Latin scripts but, on short Western text, it often
picks cp1250 or a DOS code page over Windows-1252, which the web (WHATWG) treats as the
default for "latin1". So when the text is mostly Latin letters, Windows-1252 wins.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from charset_normalizer import from_bytes

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Not allowed in XML 1.0 (C0 controls but tab/newline, surrogates, U+FFFE/U+FFFF), plus DEL
# and the C1 controls, which only ever appear in text that was decoded with the wrong codec.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Unicode category Cc (C0, DEL, C1) but tab and newline: a regex, not a loop over characters.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class NotText(ValueError):
    """The bytes are not text in any encoding (binary data)."""


def decode(data: bytes, *, html: bool = False) -> str:
    """Decode ``data``, normalize line ends to LF and Unicode to NFC, drop illegal characters."""
    text = _decode(data, html=html)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _looks_binary(text):
        raise NotText("binary data, not text")
    return unicodedata.normalize("NFC", strip_illegal(text))


def strip_illegal(text: str) -> str:
    """Remove characters that XML 1.0 forbids (and C1 controls); keeps tab and newline."""
    return _ILLEGAL.sub("", text)


def _decode(data: bytes, *, html: bool) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                raise NotText(f"starts with a {encoding} byte order mark but is not {encoding}") from None
    if b"\x00" in data[:8192]:
        raise NotText("binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _mostly_utf8(data):
        return data.decode("utf-8", errors=_STRAY_BYTES)
    if html and (declared := _declared_charset(data)):
        try:
            return data.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    return _legacy(data)


def _mostly_utf8(data: bytes) -> bool:
    """More valid multi-byte UTF-8 characters than invalid bytes: UTF-8 with a few stray bytes.

    Text in a legacy encoding practically never holds valid UTF-8 sequences by chance.
    """
    valid = data.decode("utf-8", errors="ignore")
    invalid_bytes = len(data) - len(valid.encode("utf-8"))
    return sum(1 for c in valid if not c.isascii()) > invalid_bytes


def _stray_byte(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: read bytes that are not UTF-8 as Windows-1252 (unassigned ones go)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("cp1252", errors="ignore"), exc.end


_STRAY_BYTES = "publisher.stray-byte"
codecs.register_error(_STRAY_BYTES, _stray_byte)


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    name = match.group(1).decode("ascii").lower()
    # WHATWG: pages that say latin1/iso-8859-1/ascii are decoded as windows-1252.
    return "cp1252" if name in ("iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii") else name


def _legacy(data: bytes) -> str:
    best = from_bytes(data).best()
    guess = str(best) if best is not None else None
    if guess is None or _mostly_latin(guess):
        # 0x81, 0x8D, 0x8F, 0x90 and 0x9D are unassigned in cp1252: stray bytes, dropped
        return data.decode("cp1252", errors="ignore")
    return guess


def _mostly_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    ascii_letters = sum(1 for c in letters if c.isascii())
    return ascii_letters / len(letters) >= 0.5 or all(ord(c) < 0x250 for c in letters)


def _looks_binary(text: str) -> bool:
    sample = text[:8192]
    controls = len(_CONTROLS.findall(sample))
    # a few stray controls are dirt to strip; many of them mean the file is not text at all
    return controls > max(3, len(sample) // 10)
