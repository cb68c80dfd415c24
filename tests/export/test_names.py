"""Zip path names: the percent-encoding round-trips every string and is always safe to unpack."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcrate.export.names import (
    EMPTY_COMPONENT,
    item_path,
    parse_item_path,
    safe_component,
    unsafe_component,
)

# Every code point, including controls, C1, surrogates and unassigned ones.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
TRICKY = st.text(
    alphabet=st.sampled_from(list("%/\\.\x00\x01\x1f\x7f\x85 aEé\u0301\u0327\ud800Ω")), max_size=12
)


def assert_safe(component: str) -> None:
    assert component not in (".", "..", "")
    assert "/" not in component and "\\" not in component
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in component)
    assert unicodedata.normalize("NFC", component) == component  # stable if re-normalised
    component.encode("utf-8")  # always a valid UTF-8 zip name


@settings(max_examples=3000)
@given(st.one_of(ANY_TEXT, TRICKY))
def test_round_trip_and_safety(name: str) -> None:
    encoded = safe_component(name)
    assert_safe(encoded)
    assert unsafe_component(encoded) == unicodedata.normalize("NFC", name)


@settings(max_examples=500)
@given(st.one_of(ANY_TEXT, TRICKY), st.one_of(ANY_TEXT, TRICKY))
def test_encoding_is_injective(a: str, b: str) -> None:
    if unicodedata.normalize("NFC", a) != unicodedata.normalize("NFC", b):
        assert safe_component(a) != safe_component(b)


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entwürfe"),
        ("Entwu\u0308rfe", "Entwürfe"),  # NFD in, NFC out
        ("受信トレイ", "受信トレイ"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),
        (".hidden", ".hidden"),
        ("", EMPTY_COMPONENT),
        ("%", "%25"),
        ("%2E", "%252E"),
        ("a/b", "a%2Fb"),
        ("a\\b", "a%5Cb"),
        ("nul\x00", "nul%00"),
        ("tab\tnl\n", "tab%09nl%0A"),
        ("del\x7f", "del%7F"),
        ("c1\x85", "c1%C2%85"),
        ("\x0e\u0301", "%0E%CC%81"),  # the mark would compose with the hex digit E
        ("\ud800", "%ED%A0%80"),  # lone surrogate (undecodable source name)
        ("Sent Items", "Sent Items"),
    ],
)
def test_examples(name: str, encoded: str) -> None:
    assert safe_component(name) == encoded
    assert unsafe_component(encoded) == unicodedata.normalize("NFC", name)


@pytest.mark.parametrize("bad", ["%G0", "abc%", "%2", "a%%", "%FF", "%C3"])
def test_malformed_components_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        unsafe_component(bad)


def test_non_canonical_escapes_are_accepted() -> None:
    assert unsafe_component("%41%c3%a9") == "Aé"


def test_item_paths() -> None:
    assert item_path("mail", ["INBOX"], 1) == "mail/INBOX/000001.eml"
    assert item_path("mail", ("Archive", "2024/Q1", ".."), 42) == "mail/Archive/2024%2FQ1/%2E%2E/000042.eml"
    assert item_path("calendar", ["Work"], 7) == "calendar/Work/000007.eml"
    assert item_path("mail", ["INBOX"], 1234567) == "mail/INBOX/1234567.eml"
    for bad in [("mail", [], 1), ("calendar", ["a", "b"], 1), ("mail", ["x"], 0), ("tasks", ["x"], 1)]:
        with pytest.raises(ValueError):
            item_path(*bad)  # type: ignore[arg-type]


@settings(max_examples=500)
@given(
    st.sampled_from(["mail", "calendar"]),
    st.lists(st.one_of(ANY_TEXT, TRICKY), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=10**7),
)
def test_item_path_round_trip(kind: str, folder: list[str], seq: int) -> None:
    if kind == "calendar":
        folder = folder[:1]
    path = item_path(kind, folder, seq)  # type: ignore[arg-type]
    parts = path.split("/")
    assert all(p not in ("", ".", "..") for p in parts)
    assert parse_item_path(path) == (kind, tuple(unicodedata.normalize("NFC", f) for f in folder), seq)


@pytest.mark.parametrize(
    "bad", ["manifest.jsonl", "mail/000001.eml", "calendar/a/b/000001.eml", "mail/x/1.eml"]
)
def test_parse_item_path_rejects_other_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_item_path(bad)
