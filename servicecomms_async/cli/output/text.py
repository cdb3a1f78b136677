"""Server text made safe for a terminal: control characters shown as escapes, never obeyed.

An incident title, an error message or a tenant's display name comes from a server (or from a
proxy in front of it). Written raw, ``ESC ] 0 ; ... BEL`` retitles the window, ``ESC [ 2 J``
clears the screen and ``ESC ] 52`` writes the clipboard; a bidirectional override reorders what
follows. Every C0 and C1 control character, DEL and the bidirectional formatting characters
become visible escapes (``\\x1b``, ``\\u202e``) in error lines and tables. Records (json, jsonl,
csv) keep the text as sent: they are data, and JSON escapes control characters itself.
"""

from __future__ import annotations

import re

# C0 controls (tab and newline included: a cell or an error line is one line), DEL, C1 controls,
# and the bidirectional embedding, override and isolate characters.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character escaped, so that a terminal shows it and obeys none."""
    return _UNSAFE.sub(_escape, text)
