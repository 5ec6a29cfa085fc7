"""The operator's extra link: the catalog's products in Meta Commerce Manager."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

COMMERCE_MANAGER_URL = "https://business.facebook.com/commerce/catalogs/{catalog_id}/products"
#: The operator pushes the catalog it synced under this XCom key; the link reads it.
CATALOG_ID_XCOM_KEY = "facebook_catalog_id"


class FacebookCatalogLink(BaseOperatorLink):
    """Link to the catalog's products in Meta Commerce Manager."""

    name = "Meta Commerce Manager"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        catalog_id = XCom.get_value(ti_key=ti_key, key=CATALOG_ID_XCOM_KEY)
        return COMMERCE_MANAGER_URL.format(catalog_id=catalog_id) if catalog_id else ""
