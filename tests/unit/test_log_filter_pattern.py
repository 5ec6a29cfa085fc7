"""The CloudWatch Logs filter-pattern evaluator the deploy-template tests rely on
(tests/fixtures/log_filter_pattern.py), checked against the examples of AWS's filter pattern syntax
page: the same JSON event, the same patterns, the same documented outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.log_filter_pattern import FilterPatternError, matches, parse

# The example event of "Matching terms in JSON log events".
DOCUMENTED_EVENT: dict[str, Any] = {
    "eventType": "UpdateTrail",
    "sourceIPAddress": "111.111.111.111",
    "arrayKey": ["value", "another value"],
    "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
    "SomeObject": None,
    "ThisFlag": True,
}

# The example event of "JSON compound conditions".
COMPOUND_EVENT: dict[str, Any] = {
    "user": {"id": 1, "email": "John.Stiles@example.com"},
    "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
    "actions": ["GET", "PUT", "DELETE"],
    "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
}


@pytest.mark.parametrize(
    "pattern",
    [
        '{ $.eventType = "UpdateTrail" }',
        "{ $.sourceIPAddress != 123.123.* }",
        '{ $.arrayKey[0] = "value" }',
        "{ $.objectList[1].id = 2 }",
        "{ $.SomeObject IS NULL }",
        "{ $.SomeOtherObject NOT EXISTS }",
        "{ $.ThisFlag IS TRUE }",
    ],
)
def test_the_documented_single_conditions_match_the_documented_event(pattern: str) -> None:
    assert matches(pattern, DOCUMENTED_EVENT)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', True),
        ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', False),
        (
            '{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch'
            " && $.actions[2] = nomatch }",
            True,
        ),
        (
            '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch)'
            " && $.actions[2] = nomatch }",
            False,
        ),
    ],
)
def test_the_documented_compound_conditions_give_the_documented_outcome(pattern: str, expected: bool) -> None:
    """The third and fourth differ only by parentheses: && binds tighter than ||."""
    assert matches(pattern, COMPOUND_EVENT) is expected


def test_or_of_two_values_as_documented() -> None:
    pattern = "{$.foo = bar || $.foo = baz }"
    assert matches(pattern, {"foo": "bar"})
    assert matches(pattern, {"foo": "baz"})
    assert not matches(pattern, {"foo": "qux"})


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ('{ $.e = "*Event" }', "PutEvent", True),
        ('{ $.e = "*Event" }', "EventName", False),
        ('{ $.e = "Event*" }', "EventName", True),
        ('{ $.e = "Event*" }', "PutEvent", False),
        ('{ $.e = "*ent*" }', "PutEventNow", True),
        # A * inside the string is the character itself.
        ('{ $.e = "Ev*ent" }', "Event", False),
        ('{ $.e = "Ev*ent" }', "Ev*ent", True),
        ("{ $.e = * }", "anything", True),
        ('{ $.e != "Put*" }', "GetEvent", True),
        ('{ $.e != "Put*" }', "PutEvent", False),
        ('{ $.e = "PutEvent" }', "putevent", False),  # case-sensitive
    ],
)
def test_wildcards_only_at_the_ends(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, {"e": value}) is expected


def test_objects_arrays_and_absent_properties_match_no_comparison() -> None:
    assert not matches("{ $.users = 1 }", {"users": [1, 2, 3]})
    assert not matches("{ $.users != 1 }", {"users": [1, 2, 3]})
    assert not matches('{ $.a != "x" }', {"b": "x"})
    assert not matches('{ $.a != "x" }', {"a": None})
    assert matches('{ ($.a NOT EXISTS) || ($.a != "x") }', {"b": "x"})
    assert not matches('{ ($.a NOT EXISTS) || ($.a != "x") }', {"a": "x"})
    assert not matches("{ $.a NOT EXISTS }", {"a": None})
    assert not matches("{ $.a IS NULL }", {})
    assert not matches("{ $.ThisFlag IS FALSE }", DOCUMENTED_EVENT)
    assert not matches("{ $.arrayKey[5] = value }", DOCUMENTED_EVENT)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("{ $.latency >= 500 }", True),
        ("{ $.latency > +1000 }", False),
        ("{ $.latency < 10e3 }", True),
        ("{ $.latency <= 55.5 }", False),
        ("{ $.latency = 500 }", True),
        ("{ $.latency != 500 }", False),
        ("{ $.name > 1 }", False),  # a string is no number
    ],
)
def test_numeric_comparisons(pattern: str, expected: bool) -> None:
    assert matches(pattern, {"latency": 500, "name": "900"}) is expected


def test_a_quoted_string_may_hold_escapes_and_spaces() -> None:
    assert matches('{ $.m = "say \\"hi\\" now" }', {"m": 'say "hi" now'})
    assert matches('{ $.m = "a b" }', '{"m": "a b"}')


@pytest.mark.parametrize(
    "pattern",
    [
        "ERROR",  # a term pattern, not JSON
        "[ip, user, status_code = 4*]",
        "{ $.a = }",
        '{ $.a = "x" && }',
        '{ ($.a = "x" }',
        '{ $.a > "x" }',
        "{ $.a IS MISSING }",
        "{ $.a = %ab+c% }",
        '{ a = "x" }',
    ],
)
def test_syntax_it_does_not_know_is_refused(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        parse(pattern)
