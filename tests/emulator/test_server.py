"""The emulator as a server: in a background thread, through its HTTP control endpoints, as a process."""

from __future__ import annotations

import argparse
import json
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from facebook_catalog.emulator import EmulatorConfig, EmulatorServer
from facebook_catalog.emulator.server import add_arguments, config_from_args, run_from_args

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG = "555"
TOKEN = "emulator-token"


def product(retailer_id: str) -> dict[str, Any]:
    return {
        "id": retailer_id,
        "title": "Lamp",
        "description": "A lamp.",
        "availability": "in stock",
        "condition": "new",
        "price": "30 EUR",
        "link": "https://shop.example/lamp",
        "image_link": "https://shop.example/lamp.jpg",
        "brand": "Lumen",
    }


def request(
    method: str, url: str, *, form: dict[str, str] | None = None, json_body: Any = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = None
    headers = {}
    if form is not None:
        data = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    prepared = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(prepared, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def post_batch(
    base_url: str, *retailer_ids: str, token: str = TOKEN
) -> tuple[int, dict[str, Any], dict[str, str]]:
    records = [{"method": "UPDATE", "data": product(retailer_id)} for retailer_id in retailer_ids]
    return request(
        "POST",
        f"{base_url}/v25.0/{CATALOG}/items_batch",
        form={"access_token": token, "item_type": "PRODUCT_ITEM", "requests": json.dumps(records)},
    )


def test_the_fixture_serves_graph_calls_and_exposes_state(emulator: EmulatorServer) -> None:
    assert emulator.url == f"http://127.0.0.1:{emulator.port}"
    status, body, _ = post_batch(emulator.url, "a", "b")
    assert status == 200, body
    assert set(emulator.items(CATALOG)) == {"a", "b"}
    (call,) = emulator.calls()
    assert call["endpoint"] == "items_batch"
    assert call["handle"] == body["handles"][0]


def test_set_faults_and_reset_from_the_owning_thread(emulator: EmulatorServer) -> None:
    emulator.set_faults(server_error_next=1)
    status, body, _ = post_batch(emulator.url, "a")
    assert (status, body["error"]["code"]) == (500, 2)
    assert post_batch(emulator.url, "a")[0] == 200

    emulator.set_faults(throttle_next=5)
    emulator.reset()
    assert emulator.items(CATALOG) == {}
    assert emulator.calls() == []
    assert post_batch(emulator.url, "a")[0] == 200


def test_http_control_endpoints(emulator: EmulatorServer) -> None:
    base = f"{emulator.url}/_emulator"
    status, health, _ = request("GET", f"{base}/health")
    assert status == 200
    assert health["status"] == "ok"
    assert health["config"]["appsecret_proof_required"] is False
    assert TOKEN not in json.dumps(health)

    status, body, _ = request(
        "POST", f"{base}/faults", json_body={"throttle_next": 1, "latency_seconds": 0.01}
    )
    assert status == 200
    assert body["faults"]["throttle_next"] == 1
    assert request("GET", f"{base}/faults")[1]["faults"]["latency_seconds"] == 0.01
    status, body, headers = post_batch(emulator.url, "a")
    assert (status, body["error"]["code"], headers["Retry-After"]) == (400, 80014, "1")

    status, body, _ = request("POST", f"{base}/faults", json_body={"throttle_next": 1, "typo": 2})
    assert status == 400
    assert "typo" in body["error"]
    status, body, _ = request("POST", f"{base}/faults", json_body={"drop_next": -1})
    assert status == 400

    assert post_batch(emulator.url, "a", "b")[0] == 200
    status, body, _ = request("GET", f"{base}/catalogs/{CATALOG}/items")
    assert status == 200
    assert set(body["items"]) == {"a", "b"}
    assert body["items"]["a"]["price"] == "30 EUR"
    status, body, _ = request("GET", f"{base}/calls")
    assert [call["status"] for call in body["calls"]] == [400, 200]

    status, body, _ = request("POST", f"{base}/reset")
    assert status == 200
    assert request("GET", f"{base}/catalogs/{CATALOG}/items")[1] == {"items": {}}
    assert request("GET", f"{base}/calls")[1] == {"calls": []}
    assert request("GET", f"{base}/faults")[1]["faults"]["latency_seconds"] == 0
    assert request("GET", f"{base}/nothing-here")[0] == 404


class TestConfiguredFixture:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(access_tokens=("other-token",), processing_seconds=30)

    def test_overriding_emulator_config_changes_the_emulator(self, emulator: EmulatorServer) -> None:
        assert post_batch(emulator.url, "a")[1]["error"]["code"] == 190
        assert post_batch(emulator.url, "a", token="other-token")[0] == 200
        # Thirty seconds of processing: nothing applied yet.
        assert emulator.items(CATALOG) == {}


def test_a_busy_port_fails_at_start(emulator: EmulatorServer) -> None:
    with pytest.raises(OSError), EmulatorServer(port=emulator.port):
        pass


def test_a_server_that_is_not_running_has_no_url() -> None:
    server = EmulatorServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    server.stop()  # stopping a server that never started is harmless


def test_config_rejects_impossible_settings() -> None:
    with pytest.raises(TypeError):
        EmulatorConfig(access_tokens="emulator-token")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_scale"):
        EmulatorConfig(time_scale=0)
    with pytest.raises(ValueError, match="batch_calls_per_minute"):
        EmulatorConfig(batch_calls_per_minute=0)
    with pytest.raises(ValueError, match="processing_seconds"):
        EmulatorConfig(processing_seconds=-1)


# Command line


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_defaults() -> None:
    args = parse([])
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    assert config_from_args(args) == EmulatorConfig()


def test_cli_options_build_the_config() -> None:
    args = parse(
        [
            "--token",
            "t1",
            "--token",
            "t2",
            "--app-secret",
            "s3cret",
            "--processing-seconds",
            "2.5",
            "--batch-calls-per-minute",
            "8",
            "--time-scale",
            "60",
        ]
    )
    assert config_from_args(args) == EmulatorConfig(
        access_tokens=("t1", "t2"),
        app_secret="s3cret",
        processing_seconds=2.5,
        batch_calls_per_minute=8,
        time_scale=60,
    )


def test_cli_refuses_an_invalid_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_from_args(parse(["--time-scale", "0"])) == 2
    assert "time_scale" in capsys.readouterr().err


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_module_runs_as_a_process_and_stops_on_a_signal(stop_signal: signal.Signals) -> None:
    secret_token = "process-secret-token"
    process = subprocess.Popen(
        [sys.executable, "-m", "facebook_catalog.emulator", "--port", "0", "--token", secret_token],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "the emulator printed nothing within 15 s"
        line = process.stdout.readline()
        url = line.split()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")

        status, body, _ = post_batch(url, "a", token=secret_token)
        assert status == 200, body
        status, body, _ = request("GET", f"{url}/_emulator/catalogs/{CATALOG}/items")
        assert set(body["items"]) == {"a"}

        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    assert "items_batch" in stderr
    assert secret_token not in stderr
