"""The emulator's shortcuts decide nothing the full rules would not.

Each fast path (plain records with their quick tests per value and per column, ``form_unquote``,
``item_after``, applying a finished batch once, the verdict's lazy lists) must give exactly what
the plain rule beside it gives; these tests hold them to it on values chosen to be awkward.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any
from urllib.parse import quote_plus, unquote_to_bytes, urlencode

import pytest

from facebook_catalog.emulator import EmulatorConfig, EmulatorState, FaultPlan
from facebook_catalog.emulator.forms import form_unquote, parse_urlencoded
from facebook_catalog.emulator.state import Operation, apply_operation, item_after, item_after_by_rule
from facebook_catalog.emulator.validation import (
    _FIELD_CHECKS,
    _PLAIN_HTTP_URL,
    _PLAIN_VALUE_TEST,
    _QUICK_TESTS,
    ItemVerdict,
    _column_passes_quick_test,
    _is_blank,
    _is_http_url,
    check_record,
    passes_quick_test,
    plain_records,
)
from tests.emulator.products import product

TRICKY_URLS = [
    "https://shop.example/a",
    "http://x.y/z?q=1#f",
    "HTTPS://CDN.example/x.png",
    "HtTp://MiXeD.Case/ok",
    "https://host",
    "http://h",
    "https://host?x",
    "https://host#x",
    "https://host:/x",
    "https://host:8080/x",
    "https://host:99999/x",
    "https://host:123456/x",
    "https://host:abc/x",
    "https://a.b.c:8080/p/q;r?s#t",
    "https://0/x",
    "https://-/x",
    "https://./x",
    "https://host./x",
    "https://%41/x",
    "https://host/%zz",
    "https://host/x\\y",
    "https://host\\x/y",
    "https://user@host/x",
    "https://user:pw@host/x",
    "https://a@b@c/x",
    "https://a@/x",
    "https://:1@/x",
    "https://[::1]/x",
    "https://[::1/x",
    "https://::1]/x",
    "https://a[/x",
    "https://a]b/x",
    "https://a[b]/x",
    "https://[v7.abc]/x",
    "https://",
    "https:/x",
    "https:x",
    "https//host/x",
    "https:///x",
    "https:////x",
    "//host/x",
    "host/x",
    "/relative/path",
    "shop.example/a",
    "ftp://a/b",
    "javascript://host/x",
    "httpx://host/x",
    "http s://host/x",
    "http\u017f://host/x",
    "https://ho\u017ft/x",
    "https://\u212a.example/x",
    "https://\u00e9xample.com/",
    "https://xn--xample-9ua.com/",
    "https://host/\u00e9",
    "https://host/\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "https://\u0627\u0644\u0639\u0631\u0628\u064a\u0629.iq/x",
    "https://host\uff0fx/y",
    "https://host\u2044x/y",
    "https://a b/c",
    "https://shop.example/a b",
    " https://host/x",
    "https://host/x ",
    "\thttps://host/x",
    "https://ho\tst/x",
    "https://host/x\n",
    "https://h/\n",
    "https://host/x\r",
    "https://host/x\x0b",
    "https://host/x\x0c",
    "https://host/x\x1c",
    "https://host/x\x1f",
    "https://host/x\x85",
    "https://host/x\xa0",
    "https://host\u2028/x",
    "https://host/\u3000x",
    "https://host/x\x00",
    "https://host/x\x01y",
    "https://host/x\x7fy",
    "\x00https://host/x",
    "\x1fhttps://host/x",
    "https://host/" + "a" * 3000,
    "https://" + "h" * 300 + "/x",
    "",
    "   ",
]

TRICKY_VALUES: list[Any] = [
    None,
    "",
    " ",
    "\t",
    "\u3000",
    "x",
    " padded ",
    "In Stock",
    "in stock",
    " in stock",
    "in stock ",
    "IN STOCK",
    "new",
    "New",
    "used",
    "refurbished",
    "active",
    "archived",
    "preorder",
    "available for order",
    "9.99 USD",
    "25000 IQD",
    "0 EUR",
    "9.99 usd",
    "9.99 XYZ",
    "9.99",
    "$9.99",
    "12,99 EUR",
    "9.99  USD",
    " 9.99 USD",
    "9.99 USD\n",
    "5 EUR\n6 EUR",
    "\u0662\u0665\u0660\u0660\u0660 IQD",
    "1e3 USD",
    "x" * 100,
    "x" * 101,
    "t" * 200,
    "t" * 201,
    "x" * 9999,
    "x" * 10000,
    "قميص قطني",
    1,
    0,
    2.5,
    True,
    False,
    ["a"],
    [],
    {"k": "v"},
    10**20,
    *TRICKY_URLS,
]

GOOD_VALUES = {
    "title": "Blue mug",
    "description": "A blue mug.",
    "brand": "Mugs Inc",
    "price": "9.99 USD",
    "sale_price": "7.99 USD",
    "availability": "in stock",
    "condition": "new",
    "status": "active",
    "link": "https://shop.example/mug",
    "image_link": "https://cdn.example/mug.jpg",
    "mobile_link": "https://m.shop.example/mug",
    "item_group_id": "g1",
}


def generated_urls() -> list[str]:
    """Every combination of awkward schemes, hosts, ports and tails."""
    schemes = ["http://", "https://", "HTTPS://", "http\u017f://", "https:/", "ftp://", ""]
    hosts = ["shop.example", "a", "-a", "a_b", "[::1]", "a[", "u@h", "@", "", "h\u00e9", "%41", "h h"]
    ports = ["", ":", ":0", ":8080", ":99999", ":123456", ":x"]
    tails = ["", "/", "/p", "?q=1", "#f", "/p q", "/\u00e9", "/\x7f", "/\t", "\\p", "/a@b[c]"]
    return [
        scheme + host + port + tail
        for scheme, host, port, tail in itertools.product(schemes, hosts, ports, tails)
    ]


# URLs


@pytest.mark.parametrize("url", TRICKY_URLS)
def test_the_url_pattern_accepts_only_urls_the_full_check_accepts(url: str) -> None:
    if _PLAIN_HTTP_URL.fullmatch(url):
        assert _is_http_url(url), url


def test_the_url_pattern_agrees_on_generated_urls() -> None:
    urls = generated_urls()
    fast = [url for url in urls if _PLAIN_HTTP_URL.fullmatch(url)]
    assert all(_is_http_url(url) for url in fast)
    # And it does take the common ones.
    assert "https://shop.example/p" in fast
    assert "HTTPS://a:8080?q=1" in fast


def test_the_url_pattern_takes_typical_catalog_links() -> None:
    for url in (
        "https://shop.example.iq/products/123",
        "https://cdn.example.iq/images/000123.jpg",
        "http://shop.example/p?id=1&ref=feed#top",
        "HTTPS://SHOP.EXAMPLE/P",
    ):
        assert _PLAIN_HTTP_URL.fullmatch(url), url


# Quick tests, one value and a whole column


@pytest.mark.parametrize("name", sorted(_QUICK_TESTS))
def test_a_value_passing_its_quick_test_draws_no_message(name: str) -> None:
    for value in TRICKY_VALUES:
        if not passes_quick_test(_QUICK_TESTS[name], value):
            continue
        assert not _is_blank(value), (name, value)
        verdict = ItemVerdict("sku-1", "UPDATE")
        _FIELD_CHECKS[name](name, value, verdict)
        assert verdict.errors == [], (name, value)
        assert verdict.warnings == [], (name, value)


@pytest.mark.parametrize("name", [*sorted(_QUICK_TESTS), "item_group_id"])
def test_a_column_passes_only_if_every_value_passes(name: str) -> None:
    quick_test = _QUICK_TESTS.get(name, _PLAIN_VALUE_TEST)
    good = GOOD_VALUES.get(name, "https://shop.example/a")
    for value in [*TRICKY_VALUES, *generated_urls()]:
        for column in ([value], [good, value], [value, good, good], [value, value]):
            if _column_passes_quick_test(quick_test, column):
                assert all(passes_quick_test(quick_test, item) for item in column), (name, column)


def test_url_columns_sharing_a_prefix_pass_and_odd_ones_do_not() -> None:
    url_test = _QUICK_TESTS["link"]
    shared = [f"https://shop.example/products/{n}" for n in range(50)]
    assert _column_passes_quick_test(url_test, shared)
    mixed = [*shared, "http://other.example/x", "HTTPS://third.example:8443/y?z#w"]
    assert _column_passes_quick_test(url_test, mixed)
    for odd in (
        "https://shop.example/a b",
        "https://shop.example\n/x",
        "https://a@/x",
        "ftp://shop.example/x",
    ):
        assert not _column_passes_quick_test(url_test, [*shared, odd]), odd
    # A shared start that stops inside the host proves nothing about the host.
    assert not _column_passes_quick_test(url_test, ["https://a.com/x", "https://a.co[/y"])


def test_price_columns_need_one_price_a_line() -> None:
    price_test = _QUICK_TESTS["price"]
    assert _column_passes_quick_test(price_test, ["9.99 USD", "10 USD", "9.99 USD"])
    assert not _column_passes_quick_test(price_test, ["1 USD\n2 EUR", "bad"])
    assert not _column_passes_quick_test(price_test, ["9.99 usd"])


# Plain records


def test_plain_records_are_the_ones_with_nothing_to_report() -> None:
    records = [
        ("UPDATE", product("a")),
        ("CREATE", product("b", sale_price="5 USD", item_group_id="g", gtin=12345)),
        ("DELETE", {"id": "c"}),
        ("UPDATE", product("d", flavour="mint")),
        ("UPDATE", {"id": "e", "price": "1 USD"}),
        ("UPDATE", product("f", sale_price=None)),
        ("UPDATE", product("g", item_group_id=["g"])),
        ("UPDATE", product("h", link="ftp://x/y")),
        ("UPDATE", product("i", title="t" * 150)),
        ("UPDATE", product("j", brand="   ")),
        ("UPDATE", product("k", additional_image_link=["https://cdn.example/1.jpg"])),
        ("UPDATE", product("l", availability="In Stock")),
    ]
    assert plain_records(records) == [True, True] + [False] * 10
    assert plain_records([]) == []


@pytest.mark.parametrize("existing", [None, product("sku-1"), {"id": "sku-1", "price": "5 USD"}])
@pytest.mark.parametrize("method", ["CREATE", "UPDATE"])
@pytest.mark.parametrize("allow_upsert", [True, False])
@pytest.mark.parametrize(
    "data",
    [
        product(),
        product(sale_price="7 USD"),
        product(sale_price="12 USD"),
        product(sale_price="5 EUR"),
        product(retailer_id="s" * 101),
        {k: v for k, v in product(sale_price="4 USD").items() if k != "price"},
    ],
)
def test_plain_records_get_the_verdict_the_full_checks_give(
    data: dict[str, Any], method: str, allow_upsert: bool, existing: dict[str, Any] | None
) -> None:
    (plain,) = plain_records([(method, data)])
    fast = check_record(method, data, existing, allow_upsert=allow_upsert, plain=plain)
    full = check_record(method, data, existing, allow_upsert=allow_upsert)
    assert fast == full


# Forms: a url-encoded value decodes as the stdlib decodes it

AWKWARD_FORM_VALUES = [
    b"",
    b"plain",
    b"a+b",
    b"%2B+%2b",
    b"%41%4a%4A%7e",
    b"%25",
    b"%2541",
    b"100%",
    b"%",
    b"%%",
    b"%%41",
    b"%4",
    b"%zz%41",
    b"%2%341",
    b"\\",
    b"\\x41",
    b"\\%41",
    b"%5C%5Cx41",
    b"%5Cu0642%5Cn",
    b"%00%ff%FF%80",
    b"line\nbreak%0D%0A",
    "قميص%20قطني".encode(),
    b"\xd9\x82",
    quote_plus(json.dumps([{"data": {"title": 'قميص & "x" 100%+\\'}}])).encode(),
]


@pytest.mark.parametrize("raw", AWKWARD_FORM_VALUES)
def test_form_unquote_decodes_as_the_stdlib_does(raw: bytes) -> None:
    assert form_unquote(raw) == unquote_to_bytes(raw.replace(b"+", b" "))


def test_form_unquote_agrees_on_generated_values() -> None:
    pieces = [b"%", b"%2", b"%25", b"%41", b"%5c", b"%5C", b"\\", b"x", b"4", b"1", b"+", b" ", b"\xd9"]
    generator = random.Random(7)
    for _ in range(3_000):
        raw = b"".join(generator.choice(pieces) for _ in range(generator.randrange(1, 9)))
        assert form_unquote(raw) == unquote_to_bytes(raw.replace(b"+", b" ")), raw


def test_a_url_encoded_form_reads_the_values_the_sdk_encoded() -> None:
    requests = json.dumps([{"method": "UPDATE", "data": {"id": "a&b=c", "title": "قميص 100% +"}}])
    body = urlencode({"requests": requests, "item_type": "PRODUCT_ITEM", "näme": "ö"}).encode()
    fields = parse_urlencoded(body)
    assert fields == {
        "requests": requests.encode(),
        "item_type": b"PRODUCT_ITEM",
        "näme": "ö".encode(),
    }


# State: a finished batch is applied once, as _settle would apply it


def reference_catalog(batches: list[list[tuple[str, dict[str, Any]]]]) -> list[tuple[str, list[Any]]]:
    """Every valid record applied in order, one at a time, as _settle does."""
    catalog: dict[str, dict[str, Any]] = {}
    for records in batches:
        for method, data in records:
            verdict = check_record(method, data, catalog.get(str(data["id"])), allow_upsert=True)
            if not verdict.is_valid:
                continue
            operation = Operation(0, method, verdict.retailer_id, verdict.fields)
            item = apply_operation(catalog.get(verdict.retailer_id), operation)
            if item is None:
                catalog.pop(verdict.retailer_id, None)
            else:
                catalog[verdict.retailer_id] = item
    return [(key, list(item.items())) for key, item in catalog.items()]


BATCHES = [
    [("UPDATE", product("a")), ("UPDATE", product("b")), ("UPDATE", {"id": "a", "title": "Again"})],
    [("CREATE", product("c")), ("UPDATE", product("a", price="1 USD")), ("UPDATE", product("z", link="bad"))],
    [("DELETE", {"id": "a"}), ("UPDATE", product("d")), ("UPDATE", product("a", color="red"))],
    [("UPDATE", product("e", sale_price="1 USD")), ("UPDATE", {"id": "b", "gtin": None, "color": ["x"]})],
]


def catalog_of(state: EmulatorState) -> list[tuple[str, list[Any]]]:
    return [(key, list(item.items())) for key, item in state.items("c").items()]


def test_batches_finished_at_once_leave_the_catalog_settling_would() -> None:
    state = EmulatorState(EmulatorConfig())
    for records in BATCHES:
        state.submit_batch("c", records, allow_upsert=True)
    # Contents and order: a deleted then re-created id moves to the end, as with _settle.
    assert catalog_of(state) == reference_catalog(BATCHES)
    assert [key for key, _ in catalog_of(state)] == ["b", "c", "d", "a", "e"]


def test_pending_batches_are_applied_when_they_finish_and_in_order() -> None:
    now = [100.0]
    state = EmulatorState(EmulatorConfig(processing_seconds=1.0), clock=lambda: now[0])
    # An update following a pending create is an update (validated against the projection).
    batches = [*BATCHES, [("UPDATE", {"id": "c", "brand": "B"})]]
    handles = [state.submit_batch("c", records, allow_upsert=True).handle for records in batches]
    assert all(handles)
    assert state.items("c") == {}
    now[0] += 1.0
    assert catalog_of(state) == reference_catalog(batches)
    assert state.items("c")["c"]["brand"] == "B"
    for handle in handles:
        assert handle is not None
        status = state.batch_status("c", handle, load_ids_of_invalid_requests=True)
        assert status is not None
        assert status["status"] == "finished"


def test_batches_finished_at_once_leave_the_catalog_settled_batches_leave() -> None:
    at_once = EmulatorState(EmulatorConfig())
    now = [100.0]
    settled = EmulatorState(EmulatorConfig(processing_seconds=1.0), clock=lambda: now[0])
    for records in BATCHES:
        at_once.submit_batch("c", records, allow_upsert=True)
        settled.submit_batch("c", records, allow_upsert=True)
        now[0] += 1.0  # due, so the next batch finds nothing pending: each goes through _settle
        assert catalog_of(at_once) == catalog_of(settled)


ITEM_FIELDS: list[dict[str, Any]] = [
    {},
    {"id": "a", "title": "New title", "price": "1 USD"},
    {"id": "a", "gtin": 12345, "custom_number_0": 2.5, "visible": True},
    {"id": "a", "color": None},
    {"id": "a", "additional_image_link": ["https://cdn.example/1.jpg"]},
    {"id": "a", "shipping": {"country": "IQ"}, "title": None},
]


@pytest.mark.parametrize("current", [None, {}, {"id": "a", "title": "Old", "color": "red", "gtin": 1}])
@pytest.mark.parametrize("method", ["CREATE", "UPDATE", "DELETE"])
@pytest.mark.parametrize("fields", ITEM_FIELDS)
def test_an_item_after_an_operation_is_what_the_rule_makes(
    current: dict[str, Any] | None, method: str, fields: dict[str, Any]
) -> None:
    expected = item_after_by_rule(current, method, fields)
    got = item_after(current, method, fields)
    assert got == expected
    assert got is None or list(got) == list(expected or {})  # the same field order
    if all(type(value) in (str, int, float, bool) for value in fields.values()):
        assert item_after(current, method, fields, plain_values=True) == expected


def test_error_and_stuck_handles_apply_nothing_and_later_batches_still_apply() -> None:
    state = EmulatorState(EmulatorConfig())
    state.set_faults(FaultPlan(error_handles_next=1, stuck_handles_next=1))
    failed = state.submit_batch("c", [("UPDATE", product("a"))], allow_upsert=True).handle
    stuck = state.submit_batch("c", [("UPDATE", product("b"))], allow_upsert=True).handle
    fine = state.submit_batch(
        "c", [("UPDATE", product("c")), ("UPDATE", {"id": "c", "brand": "X"})], allow_upsert=True
    ).handle
    assert set(state.items("c")) == {"c"}
    assert state.items("c")["c"]["brand"] == "X"
    statuses = []
    for handle in (failed, stuck, fine):
        assert handle is not None
        status = state.batch_status("c", handle, load_ids_of_invalid_requests=False)
        assert status is not None
        statuses.append(status["status"])
    assert statuses == ["error", "started", "finished"]


def test_rejected_ids_are_errors_and_are_not_applied() -> None:
    state = EmulatorState(EmulatorConfig())
    state.set_faults(FaultPlan(reject_item_ids=("b",)))
    outcome = state.submit_batch("c", [("UPDATE", product("a")), ("UPDATE", product("b"))], allow_upsert=True)
    assert [verdict.is_valid for verdict in outcome.verdicts] == [True, False]
    assert set(state.items("c")) == {"a"}
    assert outcome.handle is not None
    status = state.batch_status("c", outcome.handle, load_ids_of_invalid_requests=True)
    assert status is not None
    assert status["ids_of_invalid_requests"] == ["b"]


def test_stored_items_do_not_share_containers_with_the_request() -> None:
    links = ["https://cdn.example/1.jpg"]
    data = product("a", additional_image_link=links)
    state = EmulatorState(EmulatorConfig())
    state.submit_batch("c", [("UPDATE", data)], allow_upsert=True)
    links.append("https://cdn.example/2.jpg")
    assert state.items("c")["a"]["additional_image_link"] == ["https://cdn.example/1.jpg"]


# Verdicts


def test_a_verdict_makes_its_lists_on_first_use_and_behaves_like_the_dataclass() -> None:
    verdict = ItemVerdict("sku-1", "UPDATE")
    assert verdict.is_valid
    assert not verdict.has_messages
    assert verdict.errors == []
    assert verdict.warnings == []
    assert verdict.fields == {}
    verdict.errors.append("bad")
    verdict.warnings.append("odd")
    assert verdict.errors == ["bad"]
    assert not verdict.is_valid
    assert verdict.has_messages
    assert verdict == ItemVerdict("sku-1", "UPDATE", ["bad"], ["odd"], {})
    assert verdict != ItemVerdict("sku-1", "UPDATE", ["bad"], [], {})
    assert ItemVerdict("a", "DELETE") == ItemVerdict("a", "DELETE", [], [], {})
    assert repr(ItemVerdict("a", "DELETE")) == (
        "ItemVerdict(retailer_id='a', method='DELETE', errors=[], warnings=[], fields={})"
    )
    with pytest.raises(TypeError):
        hash(verdict)
