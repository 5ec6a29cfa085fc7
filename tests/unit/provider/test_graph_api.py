from __future__ import annotations

import json
import random

import pytest

from facebook_catalog.hooks.graph_api import (
    BatchStatus,
    CallPacer,
    GraphApiConfigurationError,
    GraphApiResponseError,
    GraphApiRetryPolicy,
    GraphApiSettings,
    PermanentGraphApiError,
    ThrottledGraphApiError,
    TransientGraphApiError,
    appsecret_proof,
    batch_status_params,
    error_from_response,
    items_batch_form,
    parse_batch_status_response,
    parse_items_batch_response,
    retry_after_from_headers,
    settings_from_connection,
)

TOKEN = "EAAtoken-value-xyz"
SETTINGS = GraphApiSettings(
    base_url="https://graph.facebook.com",
    api_version="v25.0",
    catalog_id="111",
    access_token=TOKEN,
    app_secret="the-app-secret",
)


def meta_error(code: int, message: str = "boom", **extra: object) -> str:
    return json.dumps({"error": {"message": message, "type": "OAuthException", "code": code, **extra}})


class TestSettings:
    def test_defaults_follow_the_connection_contract(self) -> None:
        settings = settings_from_connection(
            conn_id="c", host=None, password=" tok ", extra={"catalog_id": "42"}
        )
        assert settings.base_url == "https://graph.facebook.com"
        assert settings.api_version == "v25.0"
        assert settings.catalog_id == "42"
        assert settings.access_token == "tok"
        assert settings.app_secret is None
        assert settings.items_batch_url == "https://graph.facebook.com/v25.0/42/items_batch"

    def test_operator_catalog_id_overrides_the_extra_and_host_gets_a_scheme(self) -> None:
        settings = settings_from_connection(
            conn_id="c",
            host="127.0.0.1:8765/",
            password="tok",
            extra={"catalog_id": "42", "api_version": "24.0"},
            catalog_id="77",
        )
        assert settings.catalog_url == "https://127.0.0.1:8765/v24.0/77"

    def test_form_prefixed_extras_are_understood(self) -> None:
        settings = settings_from_connection(
            conn_id="c",
            host="http://h",
            password="tok",
            extra={"extra__facebook_catalog__catalog_id": "9", "extra__facebook_catalog__app_secret": "s"},
        )
        assert (settings.catalog_id, settings.app_secret) == ("9", "s")

    @pytest.mark.parametrize(
        ("password", "extra", "message"),
        [
            ("", {"catalog_id": "1"}, "has no access token"),
            ("t", {}, "No catalog id"),
            ("t", {"catalog_id": "abc"}, "is not numeric"),
            ("t", {"catalog_id": "1", "api_version": "latest"}, "not of the form v25.0"),
        ],
    )
    def test_unusable_connections_say_what_to_fix(self, password: str, extra: dict, message: str) -> None:
        with pytest.raises(GraphApiConfigurationError, match=message):
            settings_from_connection(conn_id="my_conn", host=None, password=password, extra=extra)

    def test_repr_never_shows_token_or_secret(self) -> None:
        text = repr(SETTINGS)
        assert TOKEN not in text
        assert "the-app-secret" not in text
        assert SETTINGS.appsecret_proof not in text  # type: ignore[operator]


def test_appsecret_proof_matches_a_known_vector() -> None:
    # Computed independently: printf access-token | openssl dgst -sha256 -hmac app-secret
    assert (
        appsecret_proof("access-token", "app-secret")
        == "dbf9c72b4c8f56924f8e07138f6d465c69cb5c9dbca908ce1403e993e1a5f799"
    )


class TestRequestBuilding:
    def test_items_batch_form_carries_payload_item_type_upsert_and_proof(self) -> None:
        form = dict(items_batch_form(SETTINGS, b'[{"method":"UPDATE"}]'))
        assert form["item_type"] == "PRODUCT_ITEM"
        assert form["allow_upsert"] == "true"
        assert form["requests"] == b'[{"method":"UPDATE"}]'
        assert form["appsecret_proof"] == appsecret_proof(TOKEN, "the-app-secret")
        assert TOKEN not in json.dumps({k: str(v) for k, v in form.items()})

    def test_status_params_ask_for_invalid_ids_and_never_hold_the_token(self) -> None:
        params = batch_status_params(SETTINGS, "h1")
        assert params["handle"] == "h1"
        assert params["load_ids_of_invalid_requests"] == "true"
        assert TOKEN not in json.dumps(params)

    def test_no_proof_without_app_secret(self) -> None:
        settings = GraphApiSettings("https://g", "v25.0", "1", "tok")
        assert "appsecret_proof" not in dict(items_batch_form(settings, b"[]"))
        assert "appsecret_proof" not in batch_status_params(settings, "h")


class TestErrorClassification:
    @pytest.mark.parametrize(
        ("status", "code", "expected"),
        [
            (500, 1, TransientGraphApiError),
            (500, 2, TransientGraphApiError),
            (503, None, TransientGraphApiError),
            (400, 4, ThrottledGraphApiError),
            (400, 17, ThrottledGraphApiError),
            (400, 32, ThrottledGraphApiError),
            (400, 613, ThrottledGraphApiError),
            (400, 80004, ThrottledGraphApiError),
            (400, 80009, ThrottledGraphApiError),
            (400, 80014, ThrottledGraphApiError),
            (400, 100, PermanentGraphApiError),
            (401, 190, PermanentGraphApiError),
            (403, 200, PermanentGraphApiError),
            (400, 368, PermanentGraphApiError),
            (404, 803, PermanentGraphApiError),
            (400, None, PermanentGraphApiError),
        ],
    )
    def test_codes_map_to_classes(self, status: int, code: int | None, expected: type) -> None:
        body = meta_error(code) if code is not None else "upstream hiccup"
        error = error_from_response(
            http_status=status, body=body, headers={}, endpoint="items_batch", settings=SETTINGS
        )
        assert type(error) is expected
        assert error.code == code
        assert error.http_status == status

    def test_error_keeps_meta_fields_and_says_what_to_fix(self) -> None:
        body = meta_error(190, "Error validating access token", error_subcode=463, fbtrace_id="AbC123")
        error = error_from_response(
            http_status=400, body=body, headers={}, endpoint="items_batch", settings=SETTINGS
        )
        assert (error.code, error.subcode, error.error_type, error.fbtrace_id) == (
            190,
            463,
            "OAuthException",
            "AbC123",
        )
        assert "invalid or expired" in str(error)
        assert "password of the Airflow connection" in str(error)
        assert "fbtrace_id=AbC123" in str(error)

    def test_permission_error_names_catalog_management(self) -> None:
        error = error_from_response(
            http_status=403,
            body=meta_error(200, "Permissions error"),
            headers={},
            endpoint="e",
            settings=SETTINGS,
        )
        assert "catalog_management" in str(error)
        assert "catalog 111" in str(error)

    def test_is_transient_flag_is_honoured(self) -> None:
        body = meta_error(99, "odd", is_transient=True)
        error = error_from_response(http_status=400, body=body, headers={}, endpoint="e", settings=SETTINGS)
        assert isinstance(error, TransientGraphApiError)

    def test_too_much_data_is_permanent_with_a_hint(self) -> None:
        body = meta_error(1, "Please reduce the amount of data you're asking for, then retry your request")
        error = error_from_response(http_status=500, body=body, headers={}, endpoint="e", settings=SETTINGS)
        assert isinstance(error, PermanentGraphApiError)
        assert "max_payload_bytes" in str(error)

    def test_token_echoed_by_the_server_is_redacted(self) -> None:
        body = meta_error(100, f"bad access_token={TOKEN} proof={SETTINGS.appsecret_proof}")
        error = error_from_response(http_status=400, body=body, headers={}, endpoint="e", settings=SETTINGS)
        assert TOKEN not in str(error)
        assert str(SETTINGS.appsecret_proof) not in str(error)
        assert TOKEN not in json.dumps(error.to_dict())


class TestThrottleWait:
    def test_business_use_case_minutes_become_seconds(self) -> None:
        usage = {"111": [{"type": "catalog_batch", "call_count": 100, "estimated_time_to_regain_access": 3}]}
        assert retry_after_from_headers({"X-Business-Use-Case-Usage": json.dumps(usage)}, "111") == 180.0

    def test_retry_after_header_in_seconds_and_the_longer_wait_wins(self) -> None:
        usage = {"111": [{"estimated_time_to_regain_access": 1}]}
        headers = {"retry-after": "90", "x-business-use-case-usage": json.dumps(usage)}
        assert retry_after_from_headers(headers, "111") == 90.0
        assert retry_after_from_headers({"Retry-After": "7"}, "111") == 7.0

    def test_other_objects_count_when_the_catalog_is_not_listed(self) -> None:
        usage = {"999": [{"estimated_time_to_regain_access": 2}]}
        assert retry_after_from_headers({"X-Business-Use-Case-Usage": json.dumps(usage)}, "111") == 120.0

    @pytest.mark.parametrize(
        "header", ["not json", "[]", '{"111": [{"estimated_time_to_regain_access": 0}]}']
    )
    def test_no_usable_estimate_means_backoff(self, header: str) -> None:
        assert retry_after_from_headers({"X-Business-Use-Case-Usage": header}, "111") is None

    def test_throttled_error_carries_the_wait(self) -> None:
        usage = {"111": [{"estimated_time_to_regain_access": 5}]}
        error = error_from_response(
            http_status=400,
            body=meta_error(80014, "too many calls"),
            headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
            endpoint="items_batch",
            settings=SETTINGS,
        )
        assert isinstance(error, ThrottledGraphApiError)
        assert error.retry_after == 300.0


class TestRetryPolicy:
    def test_transient_errors_back_off_exponentially_with_jitter_then_give_up(self) -> None:
        policy = GraphApiRetryPolicy(max_transient_retries=3, backoff_base=1.0, backoff_max=100.0)
        state = policy.start()
        error = TransientGraphApiError("x")
        delays = [state.next_delay(error) for _ in range(4)]
        assert delays[3] is None
        assert 0.5 <= delays[0] <= 1.0  # type: ignore[operator]
        assert 1.0 <= delays[1] <= 2.0  # type: ignore[operator]
        assert 2.0 <= delays[2] <= 4.0  # type: ignore[operator]

    def test_backoff_is_capped(self) -> None:
        policy = GraphApiRetryPolicy(backoff_base=10.0, backoff_max=15.0)
        assert all(policy.backoff(n, random.Random(n)) <= 15.0 for n in range(1, 20))

    def test_throttling_waits_what_meta_says_capped(self) -> None:
        policy = GraphApiRetryPolicy(max_throttle_wait=120.0)
        state = policy.start()
        assert state.next_delay(ThrottledGraphApiError("t", retry_after=60.0)) == 60.0
        assert state.next_delay(ThrottledGraphApiError("t", retry_after=3600.0)) == 120.0
        assert state.throttled_retries == 2

    def test_permanent_errors_are_never_retried(self) -> None:
        assert GraphApiRetryPolicy().start().next_delay(PermanentGraphApiError("p")) is None

    def test_a_wait_past_the_deadline_is_not_taken(self) -> None:
        state = GraphApiRetryPolicy().start(deadline=1000.0)
        assert state.next_delay(ThrottledGraphApiError("t", retry_after=50.0), now=900.0) == 50.0
        assert state.next_delay(ThrottledGraphApiError("t", retry_after=200.0), now=900.0) is None

    def test_invalid_policy_is_refused(self) -> None:
        with pytest.raises(ValueError):
            GraphApiRetryPolicy(max_transient_retries=-1)


class TestResponses:
    def test_items_batch_handle_and_validation(self) -> None:
        body = {
            "handles": ["h1"],
            "validation_status": [{"retailer_id": "a", "errors": [{"message": "bad"}]}],
        }
        response = parse_items_batch_response(body, 2)
        assert response.handle == "h1"
        assert response.validation_status[0]["retailer_id"] == "a"

    def test_empty_handles_means_nothing_ingested(self) -> None:
        assert parse_items_batch_response({"handles": []}, 3).handle is None

    def test_malformed_answers_fail_clearly(self) -> None:
        with pytest.raises(GraphApiResponseError, match="handles"):
            parse_items_batch_response({"handles": "nope"}, 1)
        with pytest.raises(GraphApiResponseError, match="without data"):
            parse_batch_status_response({"data": []}, "h")

    def test_status_is_lower_cased_and_totals_kept(self) -> None:
        body = {
            "data": [
                {
                    "handle": "h",
                    "status": "FINISHED",
                    "errors": [{"line": 0, "id": "a", "message": "m"}] * 50,
                    "errors_total_count": 50,
                    "warnings_total_count": 2,
                    "ids_of_invalid_requests": ["a"],
                }
            ]
        }
        status = parse_batch_status_response(body, "h")
        assert status.status == "finished"
        assert status.is_final
        assert not status.failed
        assert status.errors_total_count == 50
        assert len(status.errors) == 20  # samples are capped, totals are exact
        assert BatchStatus.from_dict(status.to_dict()) == status

    @pytest.mark.parametrize(
        ("value", "final", "failed"),
        [("started", False, False), ("error", True, True), ("Canceled", True, True)],
    )
    def test_final_and_failed_statuses(self, value: str, final: bool, failed: bool) -> None:
        status = parse_batch_status_response({"data": [{"handle": "h", "status": value}]}, "h")
        assert (status.is_final, status.failed) == (final, failed)


class TestCallPacer:
    """Budget 3 calls per 10 s window, as a Catalog Batch limit would be, on a fake clock."""

    def test_no_waiting_until_meta_refuses_a_call(self) -> None:
        pacer = CallPacer(clock=lambda: 0.0)
        for _ in range(50):
            assert pacer.wait_before_call() == 0.0
            pacer.record_accepted()

    def test_after_the_first_refusal_calls_are_spaced_to_the_learned_budget(self) -> None:
        now = [0.0]
        pacer = CallPacer(clock=lambda: now[0])
        for moment in (0.0, 1.0, 2.0):  # three calls accepted, the fourth refused at t=3
            now[0] = moment
            pacer.record_accepted()
        now[0] = 3.0
        pacer.record_refusal(retry_after=7.0)  # the t=0 call leaves the window at t=10
        assert (pacer.budget, pacer.window) == (3, 10.0)
        assert pacer.wait_before_call() == pytest.approx(7.0 + CallPacer.MARGIN)
        now[0] = 10.01
        pacer.record_accepted()
        now[0] = 10.5
        assert pacer.wait_before_call() == pytest.approx(0.5 + CallPacer.MARGIN)  # t=1 leaves at 11
        now[0] = 30.0
        assert pacer.wait_before_call() == 0.0

    def test_a_later_refusal_tightens_the_budget(self) -> None:
        now = [0.0]
        pacer = CallPacer(clock=lambda: now[0])
        for moment in (0.0, 1.0, 2.0):
            now[0] = moment
            pacer.record_accepted()
        pacer.record_refusal(retry_after=8.0)
        now[0] = 20.0
        pacer.record_accepted()
        now[0] = 21.0
        pacer.record_accepted()
        pacer.record_refusal(retry_after=9.0)  # only two fit now
        assert pacer.budget == 2
        assert pacer.wait_before_call() > 0
