"""The headline's plain-text grammar (node/message/_plaintext.py), both ways (issue 10, item 11)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.message import Info, not_plain
from tests.support.factories import alert_info

PLAIN = [
    "prices +5% since March",
    "(2024) 30 percent",
    "8112.92, 2825.60, 3801.10",
    "HS 811292; 282560; 380110",
    "U.S. and Japan, e.g. tariffs i.e. quotas",
    "USD 1.2bn in 2021 2022 2023",
    "talks at 10:30 in Seoul",
    "Gallium exports fall 3.5% (Q3 2024)",
    "[Update] gallium | germanium",
    "Korea–China talks; 1,200 t",
    "No.1 supplier cuts output by -12%",
    "輸出規制: ガリウム・ゲルマニウム 2023年8月",
    "중국 요소 수출 검사 강화 (2021-10)",
]

NOT_PLAIN = {
    "see https://example.org": "a URL",
    "ftp://10.1.2.3": "a URL",
    "mailto:desk": "a URL",
    "ｈｔｔｐｓ：／／example.org": "a URL",
    "details at www.example.org": "domain",
    "example.museum/path": "domain",
    "ｅｘａｍｐｌｅ．ｃｏｍ": "domain",
    "пример.рф": "domain",
    "xn--80ak6aa92e.com": "domain",
    "write to analyst@agency": "e-mail",
    "write to analyst＠agency": "e-mail",
    "at 10.0.0.1/admin": "network address",
    "at 192.168.1.20:8080": "network address",
    "fe80::1": "network address",
    "2001:db8:0:0:0:0:0:1": "network address",
    "call +82 2 1234 5678": "phone",
    "call ＋８２２１２３４５６７８": "phone",
    "call 01012345678": "phone",
    "call 02-1234-5678": "phone",
    "call 03.1234.5678": "phone",
    "call (202) 555-0143": "phone",
    "<b>gallium</b>": "markup",
    "[link](target)": "markup",
    "use {template}": "markup",
}


@pytest.mark.parametrize("text", PLAIN)
def test_ordinary_headlines_are_plain_text(text: str) -> None:
    assert not_plain(text) is None
    assert Info.model_validate(alert_info(headline=text)).headline == text


@pytest.mark.parametrize(("text", "what"), NOT_PLAIN.items())
def test_links_addresses_numbers_and_markup_are_refused(text: str, what: str) -> None:
    found = not_plain(text)
    assert found is not None and what in found[0], found
    with pytest.raises(ValueError, match="headline must be plain text"):
        Info.model_validate(alert_info(headline=text))


# ------------------------------------------------------------------ properties
_words = st.sampled_from(
    ["gallium", "germanium", "exports", "fall", "Korea", "Japan", "U.S.", "e.g.", "licensing", "규제", "輸出"]
)
_numbers = st.one_of(
    st.integers(0, 999).map(str),
    st.integers(0, 999).map(lambda n: f"+{n}%"),
    st.integers(0, 999).map(lambda n: f"-{n}%"),
    st.floats(0, 9999, allow_nan=False).map(lambda x: f"{x:.1f}"),
    st.integers(1990, 2099).map(str),
    st.integers(1990, 2099).map(lambda y: f"({y})"),
    st.tuples(st.integers(1990, 2099), st.integers(1, 12)).map(lambda t: f"{t[0]}-{t[1]:02d}"),
    st.integers(1000, 9999).map(lambda h: f"{h}.{h % 97:02d}"),  # HS 6 with its dot
    st.integers(100000, 999999).map(str),  # HS 6 without
    st.integers(1, 999).map(lambda n: f"{n},{n % 1000:03d}"),
)
_plain = st.lists(st.one_of(_words, _numbers), min_size=1, max_size=12).map(" ".join)

_tlds = st.sampled_from(["com", "org", "kr", "jp", "museum", "example", "xyz", "co"])
_labels = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
_domains = st.tuples(st.lists(_labels, min_size=1, max_size=3), _tlds).map(lambda t: ".".join([*t[0], t[1]]))
_urls = st.tuples(st.sampled_from(["http", "https", "ftp", "git+ssh"]), _domains).map(lambda t: f"{t[0]}://{t[1]}/x")
_emails = st.tuples(_labels, _domains).map(lambda t: f"{t[0]}@{t[1]}")
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_phones = st.one_of(
    st.tuples(st.integers(1, 99), st.integers(10_000_000, 9_999_999_999)).map(lambda t: f"+{t[0]} {t[1]}"),
    st.integers(100_000_000, 99_999_999_999).map(lambda n: f"0{n}"),
    st.tuples(st.integers(2, 99), st.integers(100, 9999), st.integers(1000, 9999)).map(
        lambda t: f"0{t[0]}-{t[1]}-{t[2]}"
    ),
)
_contact = st.one_of(_urls, _domains, _emails, _ipv4, _phones)


def _full_width(text: str) -> str:
    """The full-width twin of every ASCII character that has one."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@settings(max_examples=300)
@given(_plain)
def test_property_generated_ordinary_headlines_pass(text: str) -> None:
    assert not_plain(text) is None, text


@settings(max_examples=300)
@given(_plain, _contact, _plain, st.booleans())
def test_property_a_link_address_or_number_anywhere_is_refused(
    before: str, contact: str, after: str, wide: bool
) -> None:
    if wide:
        contact = _full_width(contact)
    assert not_plain(f"{before} {contact} {after}") is not None, contact


def _every_rule_searched(text: str) -> tuple[str, str] | None:
    """not_plain without its skipping of rules whose characters the text lacks."""
    from node.message._plaintext import _RULES, normalized

    folded = normalized(text)
    for pattern, what, _ in _RULES:
        found = pattern.search(folded)
        if found is not None:
            return what, found.group(0)
    return None


_PIECES = st.sampled_from(
    ["a", "b", "x", "0", "1", "9", "12", "2024", ".", ":", "::", "/", "@", "+", "-", " ", "(", ")", "[", "]",
     "<", "{", "`", "\\", "com", "kr", "xn--", "http", "mailto", "ｅ", "．", "：", "한", "ä"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECES, max_size=24).map("".join))
def test_property_skipping_rules_the_text_cannot_match_changes_no_verdict(text: str) -> None:
    assert not_plain(text) == _every_rule_searched(text)
