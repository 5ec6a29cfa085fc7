"""Every file of the hostile corpus (tests/fixtures/hostile/manifest.json) through read_feed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import pytest

from facebook_catalog.feed import (
    FeedFileError,
    FeedItem,
    FeedWarning,
    Rejection,
    deduplicate,
    read_feed_file,
    rejected_rows_csv,
)
from facebook_catalog.feed.reader import read_feed_file_ids
from tests.fixtures.hostile import CorpusCase, ExpectedProblem, case_names, load_corpus

T = TypeVar("T")


def read_until_error(events: Iterable[T]) -> tuple[list[T], FeedFileError | None]:
    """What a reader yields, and the FeedFileError it stops with (None when it reads to the end)."""
    read: list[T] = []
    try:
        for event in events:
            read.append(event)
    except FeedFileError as exc:
        return read, exc
    return read, None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusCase]:
    return {case.name: case for case in load_corpus(tmp_path_factory.mktemp("hostile"))}


def test_the_corpus_is_large_and_its_files_distinct(corpus: dict[str, CorpusCase]) -> None:
    assert len(corpus) >= 30
    paths = [case.path for case in corpus.values()]
    assert len(set(paths)) == len(paths)
    assert len({path.read_bytes() for path in paths}) == len(paths)


def _assert_problems_match(
    kind: str, actual: list[Rejection] | list[FeedWarning], expected: tuple[ExpectedProblem, ...]
) -> None:
    unmatched = list(actual)
    for want in expected:
        found = next(
            (
                event
                for event in unmatched
                if event.line == want.line and event.field == want.field and want.reason in event.reason
            ),
            None,
        )
        assert found is not None, (
            f"no {kind} at line {want.line}, field {want.field!r}, reason containing {want.reason!r}; "
            f"got: {[event.message() for event in unmatched]}"
        )
        unmatched.remove(found)
    assert not unmatched, f"unexpected {kind}s: {[event.message() for event in unmatched]}"


@pytest.mark.parametrize("name", case_names())
def test_corpus_case(name: str, corpus: dict[str, CorpusCase]) -> None:
    case = corpus[name]
    events, error = read_until_error(read_feed_file(case.path, source=case.path.name))

    for event in events:
        if not isinstance(event, FeedItem):
            message = event.message()
            assert "\n" not in message
            assert "\r" not in message
            message.encode("utf-8")

    if case.file_error is not None:
        assert error is not None, f"expected a file error containing {case.file_error!r}"
        assert case.file_error in error.reason, error.reason
        assert error.source == case.path.name
        assert "\n" not in str(error)
        if case.error_mid_file:
            assert any(isinstance(event, FeedItem) for event in events)
        return
    assert error is None, f"unexpected file error: {error}"

    items = [event for event in events if isinstance(event, FeedItem)]
    rejections = [event for event in events if isinstance(event, Rejection)]
    warnings = [event for event in events if isinstance(event, FeedWarning)]

    result = deduplicate(items)
    assert [item.id for item in result.items] == list(case.good_ids)
    assert [(item.id, item.line) for item in result.duplicates] == [
        (duplicate.id, duplicate.line) for duplicate in case.duplicates
    ]
    _assert_problems_match("rejection", rejections, case.rejected)
    if case.warning_count == len(case.warnings):
        _assert_problems_match("warning", warnings, case.warnings)
    else:
        assert len(warnings) == case.warning_count
        _assert_problems_match(
            "warning",
            [
                w
                for w in warnings
                if any(w.field == want.field and w.line == want.line for want in case.warnings)
            ],
            case.warnings,
        )
    by_id = {item.id: item for item in result.items}
    for item_id, expected_fields in case.fields.items():
        assert {key: by_id[item_id].fields.get(key) for key in expected_fields} == expected_fields

    # A rejected row never also comes out as an item.
    assert not {item.line for item in items} & {rejection.line for rejection in rejections}

    # The rejected-rows report shows every reason.
    report = io.StringIO()
    assert rejected_rows_csv(rejections, report) == len(rejections)
    written = list(csv.DictReader(io.StringIO(report.getvalue())))
    assert [(int(row["line"]), row["reason"]) for row in written] == [(r.line, r.reason) for r in rejections]


def test_the_generator_script_writes_the_whole_corpus(tmp_path: Path) -> None:
    cases = load_corpus(tmp_path)
    assert {case.path.parent for case in cases} == {tmp_path}
    assert all(case.path.exists() for case in cases)


@pytest.mark.parametrize("name", case_names())
def test_the_ids_pass_fails_where_read_feed_fails_and_covers_every_item(
    name: str, corpus: dict[str, CorpusCase]
) -> None:
    """The operator sends an item at once when the ids pass saw its id only once, and trusts that
    pass to find every unreadable file before anything is sent: both must hold on every file."""
    case = corpus[name]
    events, error = read_until_error(read_feed_file(case.path))
    items = [event for event in events if isinstance(event, FeedItem)]
    pairs, ids_error = read_until_error(read_feed_file_ids(case.path))
    assert (ids_error and ids_error.reason) == (error and error.reason)
    assert {(item.line, item.fields["id"]) for item in items} <= set(pairs)
