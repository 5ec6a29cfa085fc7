"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider``
entry point. Keep it import-light: it is loaded by every Airflow component at start-up.
"""

from __future__ import annotations

from typing import Any

from facebook_catalog import __version__

# The connection form, shared with FacebookCatalogHook.get_ui_field_behaviour. Airflow 3's UI
# shows ``placeholders`` on the standard fields only (host, password here). The extra fields are
# a Params form built from ``conn-fields`` (3.2+) or the hook's widgets (3.0, 3.1): their help is
# the ``description``, and a text field's only placeholder is Airflow's own "Start typing to see
# options" with the schema's ``examples`` as suggestions (api_version). Custom placeholder text
# for an extra field has no way into that form; PLACEHOLDERS keeps the texts for the
# ui-field-behaviour contract and the descriptions say the same.
HIDDEN_FIELDS = ["schema", "port", "login"]
RELABELING = {"password": "Access token", "host": "Graph API base URL"}
PLACEHOLDERS = {
    "password": "A system-user access token with catalog_management",
    "host": "https://graph.facebook.com (or http://127.0.0.1:8765 for the emulator)",
    "catalog_id": "The catalog id from Commerce Manager, e.g. 1234567890",
    "app_secret": "Optional: sends appsecret_proof on every call",
    "api_version": "v25.0",
}
#: The extra fields' help text, shown under each field on every Airflow 3 version.
EXTRA_FIELD_HELP = {
    "catalog_id": "The catalog id from Commerce Manager, e.g. 1234567890; an operator may override it.",
    "app_secret": "Optional: when set, every call carries appsecret_proof.",
    "api_version": "Graph API version, e.g. v25.0 (the default).",
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-facebook-catalog",
        "name": "Facebook Catalog",
        "description": (
            # No underscores: the Providers page renders the description as Markdown.
            "Keep a Meta (Facebook) product catalog in sync through the Graph API's catalog batch "
            "endpoint, with a deferrable operator that frees its worker slot while Meta processes."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Facebook Catalog",
                "external-doc-url": "https://developers.facebook.com/docs/marketing-api/catalog-batch/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Facebook Catalog",
                "python-modules": ["facebook_catalog.hooks.catalog"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Facebook Catalog",
                "python-modules": [
                    "facebook_catalog.triggers.items_batch",
                    "facebook_catalog.triggers.item_review",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "Facebook Catalog",
                "python-modules": [
                    "facebook_catalog.operators.items_batch",
                    "facebook_catalog.operators.reconcile",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "facebook_catalog",
                "hook-class-name": "facebook_catalog.hooks.catalog.FacebookCatalogHook",
                "hook-name": "Facebook Catalog",
                "conn-fields": {
                    "catalog_id": {
                        "label": "Catalog ID",
                        "schema": {"type": ["string", "null"]},
                        "description": EXTRA_FIELD_HELP["catalog_id"],
                    },
                    "app_secret": {
                        "label": "App secret",
                        "schema": {"type": ["string", "null"], "format": "password"},
                        "description": EXTRA_FIELD_HELP["app_secret"],
                    },
                    "api_version": {
                        "label": "API version",
                        "schema": {"type": ["string", "null"], "default": "v25.0", "examples": ["v25.0"]},
                        "description": EXTRA_FIELD_HELP["api_version"],
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": HIDDEN_FIELDS,
                    "relabeling": RELABELING,
                    "placeholders": PLACEHOLDERS,
                },
            }
        ],
        "extra-links": ["facebook_catalog.links.commerce_manager.FacebookCatalogLink"],
    }
