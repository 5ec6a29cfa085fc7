"""The catalogs one many-catalog sync DAG keeps in step, and each one's settings.

The rule: one setting, ``catalogs`` (the run's param, else the Airflow Variable
``facebook_catalog_catalogs``, else the DAG factory's argument), lists the catalogs as a JSON list
of ``{"catalog_id", "landing_prefix", "conn_id", "language"}``; every entry is checked here once,
and a bad one fails the run with its position, field and value. Each catalog then syncs with the
DAG's settings except for what is its own: its catalog id, connection and landing prefix, and
archive, quarantine and run-record prefixes under the shared ones (``archive/<catalog id>/``,
``runs/<catalog id>/``), so two catalogs' files, records and ledgers never meet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from facebook_catalog.sync.settings import SyncSetting

CATALOGS_SETTING = SyncSetting(
    "catalogs",
    "",
    "JSON list of the catalogs the many-catalog DAG syncs: "
    '[{"catalog_id", "landing_prefix", "conn_id", "language"}]',
)

_CATALOG_ID = re.compile(r"[0-9]{1,32}")
# ISO 639-1, the base language of the catalog's feed (overrides carry their own).
_LANGUAGE = re.compile(r"[a-z]{2}")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog of the many-catalog DAG: where its files land and how to reach it."""

    catalog_id: str
    landing_prefix: str
    #: Airflow connection to the Graph API; empty: the DAG's ``conn_id`` setting.
    conn_id: str = ""
    #: ISO 639-1 code of the feed's base language (informational: summary and report).
    language: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogEntry:
        return cls(**{name: str(data.get(name) or "") for name in _FIELDS})


_FIELDS: tuple[str, ...] = ("catalog_id", "landing_prefix", "conn_id", "language")
_REQUIRED: frozenset[str] = frozenset({"catalog_id", "landing_prefix"})


class CatalogsSettingError(ValueError):
    """The catalogs setting is not a list of valid catalog entries."""


def parse_catalogs(value: Any, source: str = f"Setting {CATALOGS_SETTING.name}") -> list[CatalogEntry]:
    """The catalog entries of the setting's value (JSON text, or the list itself).

    ``source`` names where the value came from in every message. An empty value is an empty
    list; anything else must be valid in full: one bad entry fails them all, so a typo never
    silently drops a catalog from the sync.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise CatalogsSettingError(
                f"{source} is not valid JSON ({error.msg} at position {error.pos})"
            ) from None
    if not isinstance(value, list):
        raise CatalogsSettingError(f"{source} must be a JSON list of catalogs, not {type(value).__name__}")
    entries = [_entry(raw, f"{source}, entry {index}") for index, raw in enumerate(value)]
    _check_distinct(entries, source)
    return entries


def _entry(raw: Any, where: str) -> CatalogEntry:
    if not isinstance(raw, Mapping):
        raise CatalogsSettingError(f"{where} must be an object with {list(_FIELDS)}, not {raw!r}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise CatalogsSettingError(f"{where} has unknown fields {unknown}; known: {list(_FIELDS)}")
    missing = sorted(name for name in _REQUIRED if raw.get(name) in (None, ""))
    if missing:
        raise CatalogsSettingError(f"{where} lacks {', '.join(missing)}")
    fields: dict[str, str] = {}
    for name in _FIELDS:
        value = raw.get(name)
        if value is None:
            value = ""
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise CatalogsSettingError(f"{where}: field {name} must be a string, not {value!r}")
        fields[name] = str(value).strip()
    if not _CATALOG_ID.fullmatch(fields["catalog_id"]):
        raise CatalogsSettingError(
            f"{where}: field catalog_id must be Meta's numeric id, not {raw['catalog_id']!r}"
        )
    prefix = fields["landing_prefix"].strip("/")
    if not prefix:
        raise CatalogsSettingError(f"{where}: field landing_prefix must not be empty or '/'")
    fields["landing_prefix"] = f"{prefix}/"
    if fields["conn_id"] and not _CONN_ID.fullmatch(fields["conn_id"]):
        raise CatalogsSettingError(
            f"{where}: field conn_id is not an Airflow connection id: {raw['conn_id']!r}"
        )
    if fields["language"] and not _LANGUAGE.fullmatch(fields["language"]):
        raise CatalogsSettingError(
            f"{where}: field language must be an ISO 639-1 code in lower case (ar, en), "
            f"not {raw['language']!r}"
        )
    return CatalogEntry(**fields)


def _check_distinct(entries: list[CatalogEntry], source: str) -> None:
    """No catalog twice (their ledgers would race) and no landing prefix inside another (one
    catalog would sync the other's files)."""
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.catalog_id in seen:
            raise CatalogsSettingError(
                f"{source}, entry {index}: catalog_id {entry.catalog_id} "
                f"is already entry {seen[entry.catalog_id]}"
            )
        seen[entry.catalog_id] = index
    for index, entry in enumerate(entries):
        for other_index, other in enumerate(entries):
            if index != other_index and entry.landing_prefix.startswith(other.landing_prefix):
                raise CatalogsSettingError(
                    f"{source}, entry {index}: landing_prefix {entry.landing_prefix!r} lies inside entry "
                    f"{other_index}'s {other.landing_prefix!r}; each catalog needs its own landing prefix"
                )


def catalog_settings(settings: Mapping[str, Any], entry: CatalogEntry) -> dict[str, Any]:
    """The resolved DAG settings as this catalog syncs with them (module docstring); the landing
    zone checks that its prefixes stay apart."""
    own = dict(settings)
    own["catalog_id"] = entry.catalog_id
    own["landing_prefix"] = entry.landing_prefix
    if entry.conn_id:
        own["conn_id"] = entry.conn_id
    for prefix in ("archive_prefix", "quarantine_prefix", "runs_prefix"):
        own[prefix] = f"{settings[prefix]}{entry.catalog_id}/"
    return own
