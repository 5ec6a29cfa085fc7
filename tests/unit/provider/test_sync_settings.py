from __future__ import annotations

from pathlib import Path

import pytest

from facebook_catalog.sync.settings import SYNC_SETTINGS, resolve_sync_settings, settings_table_markdown

README = Path(__file__).resolve().parents[3] / "README.md"


def test_params_win_over_variables_which_win_over_defaults() -> None:
    variables = {"facebook_catalog_landing_bucket": "from-variable", "facebook_catalog_poll_interval": "15"}
    settings = resolve_sync_settings({"landing_bucket": "from-param", "catalog_id": None}, variables.get)
    assert settings["landing_bucket"] == "from-param"
    assert settings["poll_interval"] == 15
    assert settings["synced_bucket"] == "facebook-catalog-synced-products"
    assert settings["catalog_id"] == ""
    assert set(settings) == {s.name for s in SYNC_SETTINGS}


def test_prefixes_always_end_with_one_slash() -> None:
    settings = resolve_sync_settings({"landing_prefix": "/incoming"}, lambda _: None)
    assert settings["landing_prefix"] == "incoming/"


@pytest.mark.parametrize(("name", "value"), [("poll_interval", "soon"), ("max_error_ratio", "-1")])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"facebook_catalog_{name}"):
        resolve_sync_settings({}, {f"facebook_catalog_{name}": value}.get)


def test_readme_lists_every_setting_with_its_default() -> None:
    assert settings_table_markdown() in README.read_text(encoding="utf-8")
