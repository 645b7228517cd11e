"""One escaping function per sink that text from a model, a file name or a config can reach.

A model's tensor names and custom operator codes are arbitrary bytes chosen by whoever made
the file; so are file names and profile strings. Each sink has exactly one function here,
and every place that writes the sink goes through it:

- C: ``c_identifier`` (and ``CIdentifiers`` for names unique within one file), ``c_comment``,
  ``c_string``; generated C stays C99 and warning-free under ``-Wall -Wextra -pedantic``;
- Markdown: ``markdown_cell`` / ``markdown_text`` (one line; no table, heading or HTML injection);
- terminals: ``terminal_text`` (one line; control characters and escape sequences shown visibly);
- file names: ``file_name_component`` (one portable path component, bounded);
- XML: ``xml_text``.

Every function is total (any ``str``, lone surrogates included) and pure.
"""
from __future__ import annotations

import hashlib
import re

C_IDENTIFIER_MAX_CHARS = 63  # C99 5.2.4.1: significant initial characters of an internal identifier or macro
C_STRING_MAX_BYTES = 512  # C99 guarantees 4095 characters per string literal; -pedantic warns beyond
C_COMMENT_MAX_CHARS = 160
FILE_NAME_MAX_BYTES = 96  # leaves room under NAME_MAX (255) for suffixes and temporary-file prefixes
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")
_NOT_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_TRUNCATED = "..."


def short_hash(text: str) -> str:
    """8 hex digits standing for ``text`` where it had to be shortened (stable across runs and machines)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _visible(ch: str) -> str:
    """A character a reader can see: itself when printable, else a backslash escape."""
    return ch if ch.isprintable() else _escaped(ch)


def _escaped(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _cut(text: str, max_chars: int | None, key: str) -> str:
    if max_chars is None or len(text) <= max_chars:
        return text
    tail = f"{_TRUNCATED}{short_hash(key)}"
    return text[: max(max_chars - len(tail), 0)] + tail


# ----------------------------------------------------------------------------- C


def is_c_identifier(text: str) -> bool:
    return _IDENT.fullmatch(text) is not None


def c_identifier(text: str, fallback: str = "t", max_chars: int = C_IDENTIFIER_MAX_CHARS) -> str:
    """A C identifier made from arbitrary text (tensor names hold '/', ':', ';' ...), at most ``max_chars`` long.

    Distinct texts can give the same identifier (``a.b`` and ``a_b``): within one file use ``CIdentifiers``.
    """
    ident = _NOT_IDENT.sub("_", text).strip("_")
    ident = re.sub(r"_+", "_", ident) or fallback
    if ident[0].isdigit():
        ident = f"_{ident}"
    if len(ident) > max_chars:
        ident = f"{ident[: max_chars - 9].rstrip('_')}_{short_hash(text)}"
    return ident


class CIdentifiers:
    """Identifiers unique within one C file: a repeat gets ``_2``, ``_3``... (lengths stay bounded)."""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self._used: set[str] = set(reserved)

    def make(self, text: str, prefix: str = "", upper: bool = False, max_chars: int = C_IDENTIFIER_MAX_CHARS) -> str:
        body = c_identifier(text, max_chars=max(max_chars - len(prefix), 9))
        base = prefix + (body.upper() if upper else body)
        candidate, n = base, 1
        while candidate in self._used:
            n += 1
            suffix = f"_{n}"
            candidate = base[: max_chars - len(suffix)] + suffix
        self._used.add(candidate)
        return candidate


def c_comment(text: str, max_chars: int = C_COMMENT_MAX_CHARS) -> str:
    """Text safe inside a ``/* ... */`` comment on one line: no ``*/``, no ``/*``, no trigraph, no line splice."""
    out = "".join(ch if 0x20 <= ord(ch) < 0x7F else _escaped(ch) for ch in text)  # ASCII only
    out = _cut(_neutralised(out), max_chars, text)
    out = _neutralised(out)  # the cut may leave a "/" or "*" next to the tail
    return out + " " if out.endswith("\\") else out


def _neutralised(text: str) -> str:
    while "*/" in text or "/*" in text or "??" in text:
        text = text.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")
    return text


def c_string(text: str, max_bytes: int = C_STRING_MAX_BYTES) -> str:
    """A C string literal for any text: UTF-8 bytes, non-printable ones in octal; '?' escaped against trigraphs.

    Text over ``max_bytes`` bytes is cut (on a character boundary) and ends in ``...`` and a hash of the whole.
    """
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        tail = f"{_TRUNCATED}{short_hash(text)}".encode()
        data = data[: max_bytes - len(tail)].decode("utf-8", "ignore").encode("utf-8", "surrogatepass") + tail
    out = []
    for b in data:
        ch = chr(b)
        if ch in '\\"?':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


# ----------------------------------------------------------------------------- Markdown

_MARKDOWN_SPECIAL = {"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]", "#": "\\#",
                     "<": "&lt;", ">": "&gt;", "&": "&amp;"}


def markdown_cell(text: str) -> str:
    """Text for one Markdown table cell: one line, ``|`` escaped, no HTML, no emphasis or links."""
    return "".join(_MARKDOWN_SPECIAL.get(ch) or _visible(ch) for ch in text)


def markdown_text(text: str) -> str:
    """Inline Markdown text (a heading, a list item): the same rules as a cell, so it cannot start a new block."""
    return markdown_cell(text)


# ----------------------------------------------------------------------------- terminals


def terminal_text(text: str, max_chars: int | None = None) -> str:
    """One line for a terminal: control characters, escape sequences and bidi overrides shown as ``\\x1b``, ``\\n``..."""
    return _cut("".join(_visible(ch) for ch in text), max_chars, text)


# ----------------------------------------------------------------------------- file names


def file_name_component(text: str, fallback: str = "model", max_bytes: int = FILE_NAME_MAX_BYTES) -> str:
    """One portable path component (letters, digits, '.', '_', '-'), not hidden, not an option, bounded."""
    name = _NOT_FILE_NAME.sub("_", text).strip("._-") or fallback
    if len(name) > max_bytes:
        name = f"{name[: max_bytes - 9].rstrip('._-')}_{short_hash(text)}"
    return name


# ----------------------------------------------------------------------------- XML

_XML_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _xml_allowed(ch: str) -> bool:
    code = ord(ch)
    return ch in "\t\n\r" or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def xml_text(text: str) -> str:
    """Text for XML character data or an attribute value; characters XML 1.0 cannot hold become U+FFFD."""
    return "".join(_XML_SPECIAL.get(ch) or (ch if _xml_allowed(ch) else "\ufffd") for ch in text)
