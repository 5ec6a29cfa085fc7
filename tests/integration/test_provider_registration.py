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


def test_airflow_lists_the_provider_its_hook_trigger_and_link() -> None:
    provider = json.loads(airflow_cli("providers", "get", "airflow-provider-facebook-catalog", "-o", "json"))
    assert provider == [{"Provider": "airflow-provider-facebook-catalog", "Version": "0.1.0"}]
    hooks = json.loads(airflow_cli("providers", "hooks", "-o", "json"))
    (hook,) = [h for h in hooks if h["connection_type"] == "facebook_catalog"]
    assert hook["class"] == "facebook_catalog.hooks.catalog.FacebookCatalogHook"
    assert hook["conn_id_attribute_name"] == "facebook_catalog_conn_id"
    links = airflow_cli("providers", "links", "-o", "json")
    assert "facebook_catalog.links.commerce_manager.FacebookCatalogLink" in links
    triggers = airflow_cli("providers", "triggers", "-o", "json")
    assert "facebook_catalog.triggers.items_batch" in triggers


def test_connection_form_relabels_fields_with_placeholders() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["facebook_catalog"]
    assert behaviour["relabeling"] == {"password": "Access token", "host": "Graph API base URL"}
    assert {"schema", "port", "login"} <= set(behaviour["hidden_fields"])
    placeholders = behaviour["placeholders"]
    for field in ("catalog_id", "app_secret", "api_version"):
        assert f"extra__facebook_catalog__{field}" in placeholders
        assert f"extra__facebook_catalog__{field}" in manager.connection_form_widgets


def test_the_token_and_app_secret_are_registered_with_the_secret_masker(catalog_connection: Any) -> None:
    from airflow.providers.common.compat.sdk import redact

    from facebook_catalog.hooks.catalog import FacebookCatalogAsyncHook, FacebookCatalogHook

    catalog_connection(token="EAA-sync-hook-token-1", app_secret="sync-hook-secret-1")
    FacebookCatalogHook().settings  # loading the settings registers the secrets
    assert redact("token EAA-sync-hook-token-1 secret sync-hook-secret-1") == "token *** secret ***"

    catalog_connection(token="EAA-async-hook-token-2", app_secret="async-hook-secret-2")
    asyncio.run(FacebookCatalogAsyncHook().get_settings())
    assert redact("EAA-async-hook-token-2 / async-hook-secret-2") == "*** / ***"
