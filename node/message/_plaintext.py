"""What "plain text" means for an alert's headline (SPEC section 3): a tested grammar.

A headline is a summary that crosses a border in a signed message; it must not
carry a way to reach someone or something (a link, an address, a number to
call) or markup for a reader to render. The text is judged after Unicode NFKC
normalization and case folding, so full-width forms (``ｅｘａｍｐｌｅ．ｃｏｍ``,
``：／／``, ``＋８２``) read as their ASCII twins and cannot dodge a rule.

Refused, each as the first match of one pattern below:

- markup: any of ``< > { } \\ ` `` (HTML and template tags) or a markdown link
  ``[text](``;
- a URL: a scheme and ``:`` followed by ``//`` or by a scheme that needs none
  (``mailto:``, ``tel:``, ``data:`` ...), or a domain name: two or more labels of
  letters, digits and hyphens joined by dots whose last label is two or more
  letters (any script) or an IDN ``xn--`` label, with anything after it;
- an e-mail address: any ``@``;
- a network address: IPv4 (four dot-separated numbers) or IPv6 (three or more
  colons between hex groups, or ``::``), with or without a port or path;
- a phone number: ``+`` then a digit and at least seven digits in all, allowing
  spaces, dots, hyphens and parentheses between them; nine or more digits in a
  row; or the national shapes ``0XX[-. ]XXXX[-. ]XXXX`` (KR, JP) and
  ``(XXX) XXX-XXXX`` or ``XXX-XXX-XXXX`` (NANP; with spaces alone, three numbers
  are three numbers).

Everything else that is printable is plain text: words in any script, numbers
with signs, decimals and grouping (``+5%``, ``3.5``, ``1,200``), years and
dates (``2024-03``, ``(2024)``), HS codes and lists of them (``8112.92,
2825.60``), abbreviations with dots (``U.S.``, ``e.g.``), times (``10:30``),
currency amounts (``USD 1.2bn``). Control and format characters (bidi
overrides, zero-width spaces) are refused by the caller's printable check.

Pure: no I/O. tests/node/message/test_plaintext.py checks the grammar both ways with
examples and hypothesis.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

_MARKUP: Final = re.compile(r"[<>{}\\`]|\[[^\]]*\]\(")
_SCHEME: Final = re.compile(
    r"(?<![\w.+-])[a-z][a-z0-9+.-]*:(?://|(?<=mailto:)|(?<=tel:)|(?<=sms:)|(?<=data:)"
    r"|(?<=javascript:)|(?<=file:)|(?<=news:)|(?<=urn:))"
)
# A label: letters or digits of any script, hyphens inside; the last label
# (a top-level domain) two or more letters, or an IDN A-label.
_DOMAIN: Final = re.compile(
    r"(?<![\w.-])(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})(?![\w-])"
)
_EMAIL: Final = re.compile(r"@")
_IPV4: Final = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)")
_IPV6: Final = re.compile(r"(?<![\w:])(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{0,4}(?![\w:])|(?:[0-9a-f]{0,4})::(?:[0-9a-f]{1,4})?")
_PHONE_INTERNATIONAL: Final = re.compile(r"\+\s?\(?\d(?:[\s().-]?\d){6,}")
_PHONE_RUN: Final = re.compile(r"\d{9,}")
_PHONE_NATIONAL: Final = re.compile(
    r"(?<![\w.,/-])(?:\(?0\d{1,3}\)?[\s.-]?\d{3,4}[\s.-]\d{4}"
    # NANP with its parentheses or its hyphens or dots: "200 100 1990" is three numbers.
    r"|\([2-9]\d{2}\)\s?\d{3}[\s.-]\d{4}|[2-9]\d{2}([.-])\d{3}\1\d{4})(?![\d.,]*\d)"
)

_RULES: Final = (
    (_MARKUP, "markup", "<>{}\\`["),
    (_SCHEME, "a URL", ":"),
    (_EMAIL, "an e-mail address", "@"),
    (_IPV4, "a network address", "."),
    (_IPV6, "a network address", ":"),
    (_DOMAIN, "a URL (a domain name)", "."),
    (_PHONE_INTERNATIONAL, "a phone number", "+"),
    (_PHONE_RUN, "a phone number", ""),
    (_PHONE_NATIONAL, "a phone number", ""),
)
"""Each pattern in order, what a match appears to be, and the characters it cannot match
without ("": none to look for). A rule whose characters the text lacks is not searched:
the same verdict, at about half the cost for a headline without ':' or '.' (13 us for
the nine searches of a typical headline; the alert decode around it is ~37 us)."""


def normalized(text: str) -> str:
    """The form the rules read: NFKC (full-width and compatibility forms as ASCII), case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def not_plain(text: str) -> tuple[str, str] | None:
    """What in `text` is not plain text: (what it appears to be, the part found), or None."""
    folded = normalized(text)
    for pattern, what, needs in _RULES:
        if needs and not any(c in folded for c in needs):
            continue
        found = pattern.search(folded)
        if found is not None:
            return what, found.group(0)
    return None
