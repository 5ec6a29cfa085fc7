"""The provider as Airflow sees it: entry point, connection type and form, extra link, masking."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_cli(*args: str) -> str:
    result = subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120, check=True
    )
    return result.stdout


def cli_json(*args: str) -> Any:
    """The JSON an ``airflow ... -o json`` command prints, whatever else goes to stdout before it
    (Airflow 3.0 lets alembic and its own logging print there when it touches the database)."""
    stdout = airflow_cli(*args, "-o", "json")
    start = next((i for i, line in enumerate(stdout.splitlines()) if line.startswith(("[", "{"))), None)
    assert start is not None, f"no JSON in the output of airflow {' '.join(args)}:\n{stdout[-3000:]}"
    value, _ = json.JSONDecoder().raw_decode("\n".join(stdout.splitlines()[start:]))
    return value


def test_airflow_lists_the_provider_its_hook_trigger_and_link(airflow_db: Path) -> None:
    provider = cli_json("providers", "get", "airflow-provider-facebook-catalog")
    assert provider == [{"Provider": "airflow-provider-facebook-catalog", "Version": "0.1.0"}]
    hooks = cli_json("providers", "hooks")
    (hook,) = [h for h in hooks if h["connection_type"] == "facebook_catalog"]
    assert hook["class"] == "facebook_catalog.hooks.catalog.FacebookCatalogHook"
    assert hook["conn_id_attribute_name"] == "facebook_catalog_conn_id"
    links = airflow_cli("providers", "links", "-o", "json")
    assert "facebook_catalog.links.commerce_manager.FacebookCatalogLink" in links
    triggers = airflow_cli("providers", "triggers", "-o", "json")
    assert "facebook_catalog.triggers.items_batch" in triggers


def skip_without_the_form_widgets_before_airflow_3_2() -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS

    if not AIRFLOW_V_3_2_PLUS:
        # Before conn-fields, the form comes from the hook's WTForms widgets, which Airflow reads
        # only where the FAB provider is installed (MWAA images carry it; these venvs do not).
        pytest.importorskip("flask_appbuilder", reason="Airflow < 3.2 builds the form from FAB widgets")


def test_connection_form_relabels_fields_with_placeholders() -> None:
    from airflow.providers_manager import ProvidersManager

    skip_without_the_form_widgets_before_airflow_3_2()

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["facebook_catalog"]
    assert behaviour["relabeling"] == {"password": "Access token", "host": "Graph API base URL"}
    assert {"schema", "port", "login"} <= set(behaviour["hidden_fields"])
    placeholders = behaviour["placeholders"]
    for field in ("catalog_id", "app_secret", "api_version"):
        assert f"extra__facebook_catalog__{field}" in placeholders
        assert f"extra__facebook_catalog__{field}" in manager.connection_form_widgets


def test_the_ui_is_served_the_forms_labels_placeholders_and_help() -> None:
    """What the API server sends the UI's connection form (the hook metadata route's service)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    from facebook_catalog.get_provider_info import EXTRA_FIELD_HELP, PLACEHOLDERS

    skip_without_the_form_widgets_before_airflow_3_2()

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "facebook_catalog"]
    standard = meta.standard_fields
    assert (standard.password.title, standard.password.placeholder) == (
        "Access token",
        PLACEHOLDERS["password"],
    )
    assert (standard.host.title, standard.host.placeholder) == ("Graph API base URL", PLACEHOLDERS["host"])
    assert standard.port.hidden
    assert standard.login.hidden
    extra = meta.extra_fields
    for field, title in (
        ("catalog_id", "Catalog ID"),
        ("app_secret", "App secret"),
        ("api_version", "API version"),
    ):
        schema = extra[field]["schema"]
        assert schema["title"] == title
        assert extra[field]["description"] == EXTRA_FIELD_HELP[field]
    assert extra["app_secret"]["schema"]["format"] == "password"
    if "examples" in extra["api_version"]["schema"]:  # conn-fields (Airflow 3.2+); 3.0 has widgets
        assert extra["api_version"]["schema"]["examples"] == ["v25.0"]


def test_the_token_and_app_secret_are_registered_with_the_secret_masker(catalog_connection: Any) -> None:
    from airflow.providers.common.compat.sdk import redact

    from facebook_catalog.hooks.catalog import FacebookCatalogAsyncHook, FacebookCatalogHook

    catalog_connection(token="EAA-sync-hook-token-1", app_secret="sync-hook-secret-1")
    FacebookCatalogHook().settings  # loading the settings registers the secrets
    assert redact("token EAA-sync-hook-token-1 secret sync-hook-secret-1") == "token *** secret ***"

    catalog_connection(token="EAA-async-hook-token-2", app_secret="async-hook-secret-2")
    asyncio.run(FacebookCatalogAsyncHook().get_settings())
    assert redact("EAA-async-hook-token-2 / async-hook-secret-2") == "*** / ***"
