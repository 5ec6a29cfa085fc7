"""The many-catalog DAG's ``catalogs`` setting: checked once, every error naming entry and field."""

from __future__ import annotations

import json

import pytest

from facebook_catalog.sync.catalogs import (
    CatalogEntry,
    CatalogsSettingError,
    catalog_settings,
    parse_catalogs,
)
from facebook_catalog.sync.settings import resolve_sync_settings

IQ = {
    "catalog_id": "8800",
    "landing_prefix": "landing/iq",
    "conn_id": "facebook_catalog_iq",
    "language": "ar",
}
SA = {"catalog_id": "9900", "landing_prefix": "/landing/sa/"}


def test_entries_from_json_with_prefixes_normalized_and_optional_fields_empty() -> None:
    entries = parse_catalogs(json.dumps([IQ, SA]), "Variable facebook_catalog_catalogs")
    assert entries == [
        CatalogEntry("8800", "landing/iq/", "facebook_catalog_iq", "ar"),
        CatalogEntry("9900", "landing/sa/", "", ""),
    ]
    assert [CatalogEntry.from_dict(e.to_dict()) for e in entries] == entries


@pytest.mark.parametrize("empty", [None, "", "  ", "[]", []])
def test_nothing_set_is_no_catalogs(empty: object) -> None:
    assert parse_catalogs(empty) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "Variable v is not valid JSON"),
        ('{"catalog_id": "1"}', "Variable v must be a JSON list of catalogs, not dict"),
        ([IQ, "9900"], "Variable v, entry 1 must be an object"),
        ([{**IQ, "token": "x"}], "Variable v, entry 0 has unknown fields ['token']"),
        ([{"catalog_id": "8800"}], "Variable v, entry 0 lacks landing_prefix"),
        (
            [{**SA, "catalog_id": "shop-sa"}],
            "Variable v, entry 0: field catalog_id must be Meta's numeric id, not 'shop-sa'",
        ),
        ([{**SA, "landing_prefix": "/"}], "Variable v, entry 0: field landing_prefix must not be empty"),
        ([{**SA, "language": "English"}], "Variable v, entry 0: field language must be an ISO 639-1 code"),
        (
            [{**SA, "conn_id": "bad id!"}],
            "Variable v, entry 0: field conn_id is not an Airflow connection id",
        ),
        ([{**SA, "conn_id": ["a"]}], "Variable v, entry 0: field conn_id must be a string"),
        ([SA, {**IQ, "catalog_id": "9900"}], "Variable v, entry 1: catalog_id 9900 is already entry 0"),
        (
            [SA, {**IQ, "landing_prefix": "landing/sa/riyadh"}],
            "entry 1: landing_prefix 'landing/sa/riyadh/' lies inside entry 0's",
        ),
    ],
)
def test_a_bad_entry_names_its_position_field_and_value(value: object, message: str) -> None:
    with pytest.raises(CatalogsSettingError) as raised:
        parse_catalogs(value, "Variable v")
    assert message in str(raised.value)


def test_each_catalog_keeps_its_files_and_records_under_its_own_prefixes() -> None:
    shared = resolve_sync_settings({}, lambda key: None)
    iq, sa = (catalog_settings(shared, e) for e in parse_catalogs([IQ, SA]))
    assert (iq["catalog_id"], iq["conn_id"], iq["landing_prefix"]) == (
        "8800",
        "facebook_catalog_iq",
        "landing/iq/",
    )
    assert (iq["archive_prefix"], iq["quarantine_prefix"], iq["runs_prefix"]) == (
        "archive/8800/",
        "quarantine/8800/",
        "runs/8800/",
    )
    assert (sa["conn_id"], sa["runs_prefix"]) == (shared["conn_id"], "runs/9900/")
    assert shared["catalog_id"] == ""
    assert shared["runs_prefix"] == "runs/"
