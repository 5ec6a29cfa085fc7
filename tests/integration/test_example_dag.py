"""The deferrable operator through real Airflow (dag.test) against the Graph API emulator."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from facebook_catalog.emulator import EmulatorConfig, EmulatorServer
from tests.fixtures.airflow import DagRunResult

pytestmark = pytest.mark.integration

DAG_ID = "example_facebook_catalog_items_batch"
CATALOG = "7001"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    # Meta's usage header says "minutes"; 0 lets the emulator's Retry-After (1 s) set the pace.
    return EmulatorConfig(processing_seconds=1.5, throttle_regain_minutes=0)


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer) -> Callable[[str], None]:
    def define(token: str = "emulator-token") -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT",
            json.dumps(
                {
                    "conn_type": "facebook_catalog",
                    "host": emulator.url,
                    "password": token,
                    "extra": {"catalog_id": CATALOG},
                }
            ),
        )

    return define


def expected_product(i: int) -> dict[str, str]:
    return {
        "id": f"example-{i:06d}",
        "title": f"Example product {i}",
        "description": f"Generated product number {i}",
        "availability": "in stock",
        "condition": "new",
        "price": f"{1000 + i} IQD",
        "link": f"https://shop.example.com/p/{i}",
        "image_link": f"https://cdn.example.com/p/{i}.jpg",
        "brand": "Example",
    }


def test_12345_products_reach_the_catalog_in_three_calls(
    run_dag: Callable[..., DagRunResult], emulator: EmulatorServer, connect: Callable[..., None]
) -> None:
    connect()
    result = run_dag(DAG_ID, {"product_count": 12_345})
    assert result.state == "success", result.output[-3000:]
    items = emulator.items(CATALOG)
    assert len(items) == 12_345
    for i in (0, 4_999, 5_000, 12_344):
        assert items[f"example-{i:06d}"] == expected_product(i)
    posts = [c for c in emulator.calls() if c["endpoint"] == "items_batch"]
    assert [c["record_count"] for c in posts] == [5_000, 5_000, 2_345]
    summary = result.xcom("upsert_products")
    assert summary["items_sent"] == 12_345
    assert sorted(summary["statuses"].values()) == ["finished"] * 3
    assert "emulator-token" not in json.dumps(summary)
    # Airflow 3 resolves extra links when the task ends and keeps them for the UI.
    link = result.xcom("upsert_products", key="_link_FacebookCatalogLink")
    assert link == f"https://business.facebook.com/commerce/catalogs/{CATALOG}/products"


def test_throttling_and_server_errors_still_converge(
    run_dag: Callable[..., DagRunResult], emulator: EmulatorServer, connect: Callable[..., None]
) -> None:
    connect()
    emulator.set_faults(throttle_next=2, server_error_next=2)
    result = run_dag(DAG_ID, {"product_count": 6_000})
    assert result.state == "success", result.output[-3000:]
    assert len(emulator.items(CATALOG)) == 6_000
    calls = emulator.calls()
    assert sorted(c["error_code"] for c in calls[:4]) == [2, 2, 80014, 80014]
    assert "retrying in" in result.output


def test_an_invalid_token_fails_fast_with_the_fix(
    run_dag: Callable[..., DagRunResult], emulator: EmulatorServer, connect: Callable[..., None]
) -> None:
    connect(token="EAA-expired-token")
    result = run_dag(DAG_ID, {"product_count": 12_345})  # three calls' worth
    assert result.task_states["upsert_products"] == "failed"
    # The next call is prepared while one is in flight, but never sent once one has failed.
    assert len([c for c in emulator.calls() if c["endpoint"] == "items_batch"]) == 1
    assert "invalid or expired" in result.output
    assert "EAA-expired-token" not in result.output
    assert emulator.items(CATALOG) == {}
