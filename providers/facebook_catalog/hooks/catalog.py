"""Hooks for Meta's Catalog Batch API: a synchronous one for operators, an asynchronous one for
triggers. Both take every decision through :mod:`facebook_catalog.hooks.graph_api`, so they give
the same results, raise the same exceptions and retry by the same policy.

Reading the catalog back (``iter_product_pages``) yields one page at a time, so memory holds one
page however large the catalog; reads are paced to the Catalog Management budget once Meta has
throttled one (80009), as items_batch calls are to the Catalog Batch budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import BaseHook

from facebook_catalog.hooks.graph_api import (
    CATALOG_READ_FIELDS,
    DEFAULT_PRODUCTS_PAGE_SIZE,
    MISSING_CATALOG_ID_ON_CONNECTION,
    BatchStatus,
    CallPacer,
    GraphApiError,
    GraphApiRetryPolicy,
    GraphApiSettings,
    ItemsBatchResponse,
    MissingCatalogIdError,
    ProductsCursor,
    RetryState,
    ThrottledGraphApiError,
    auth_headers,
    batch_status_params,
    catalog_params,
    connection_error,
    diagnostics_params,
    error_from_response,
    items_batch_form,
    localized_items_batch_form,
    parse_batch_status_response,
    parse_diagnostics,
    parse_items_batch_response,
    parse_json_body,
    parse_products_page,
    retailer_id_filters,
    settings_from_connection,
)

if TYPE_CHECKING:
    # Imported where the asynchronous hook uses it: the operator's synchronous path never does,
    # and aiohttp with its dependencies is 4-7 MiB of every task process that imports it.
    import aiohttp

DEFAULT_CONN_ID = "facebook_catalog_default"
NO_RETRIES = GraphApiRetryPolicy(max_transient_retries=0, max_throttled_retries=0)
#: Seconds to wait for one answer; an items_batch answer for 5,000 items can take a while.
DEFAULT_REQUEST_TIMEOUT = 120.0
#: Status polls in flight at once per trigger: enough to be quick, few enough to be polite.
DEFAULT_STATUS_CONCURRENCY = 8

ITEMS_BATCH = "items_batch"
#: Counts against the same per-minute Catalog Batch budget (80014) as items_batch.
LOCALIZED_ITEMS_BATCH = "localized_items_batch"
BATCH_STATUS = "check_batch_request_status"
CATALOG = "catalog"
PRODUCTS = "products"
DIAGNOSTICS = "diagnostics"
READ_ENDPOINTS = frozenset({PRODUCTS, DIAGNOSTICS})


def _read_filters(retailer_ids: Iterable[str] | None, product_filter: str | None) -> Iterator[str | None]:
    """The filter of each paged read: one per chunk of ids, or the caller's filter as it is."""
    if retailer_ids is None:
        yield product_filter
        return
    for ids_filter in retailer_id_filters(retailer_ids):
        yield ids_filter if not product_filter else f'{{"and":[{ids_filter},{product_filter}]}}'


def _payload_bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


class _FacebookCatalogHookBase(BaseHook):
    """Connection contract, connection form and retry bookkeeping shared by both hooks."""

    conn_name_attr = "facebook_catalog_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "facebook_catalog"
    hook_name = "Facebook Catalog"

    def __init__(
        self,
        facebook_catalog_conn_id: str = DEFAULT_CONN_ID,
        catalog_id: str | None = None,
        retry_policy: GraphApiRetryPolicy | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        super().__init__()
        self.facebook_catalog_conn_id = facebook_catalog_conn_id
        self.catalog_id = str(catalog_id) if catalog_id not in (None, "") else None
        self.retry_policy = retry_policy or GraphApiRetryPolicy()
        self.request_timeout = request_timeout
        #: Retries spent waiting out Meta's throttling, for run reports and metrics.
        self.throttled_retries = 0
        self.transient_retries = 0
        #: Paces this hook's items_batch calls to the Catalog Batch budget once Meta reveals it.
        self.items_batch_pacer = CallPacer()
        #: Paces its reads (products, diagnostics) to the Catalog Management budget the same way.
        self.read_pacer = CallPacer()
        #: Graph calls the reads made (pages and diagnostics), for reports and benchmarks.
        self.read_calls = 0

    def _settings_from(self, conn: Any, extra: dict[str, Any]) -> GraphApiSettings:
        return settings_from_connection(
            conn_id=self.facebook_catalog_conn_id,
            host=conn.host,
            password=conn.password,
            extra=extra,
            catalog_id=self.catalog_id,
        )

    def _log_retry(self, state: RetryState, error: GraphApiError, delay: float) -> None:
        self.log.warning(
            "%s; retrying in %.1f s (transient retries %d, throttled retries %d)",
            error,
            delay,
            state.transient_retries,
            state.throttled_retries,
        )

    def _items_batch_pause(self) -> float:
        """Seconds to wait before the next items_batch call to stay within the learned budget."""
        return self._pause(self.items_batch_pacer, ITEMS_BATCH)

    def _read_pause(self, endpoint: str) -> float:
        """The same for the next read call, under the Catalog Management budget."""
        return self._pause(self.read_pacer, endpoint)

    def _pause(self, pacer: CallPacer, endpoint: str) -> float:
        wait = pacer.wait_before_call()
        if wait:
            # A wait of a few milliseconds (the pacer's margin) is not worth a line in the task log.
            self.log.log(
                logging.INFO if wait >= 0.1 else logging.DEBUG,
                "Pacing %s to Meta's call budget: waiting %.1f s",
                endpoint,
                wait,
            )
        return wait

    def _read_done(self) -> None:
        self.read_pacer.record_accepted()
        self.read_calls += 1

    def _note_refusal(self, endpoint: str, error: GraphApiError) -> None:
        if not isinstance(error, ThrottledGraphApiError):
            return
        if endpoint in (ITEMS_BATCH, LOCALIZED_ITEMS_BATCH):
            self.items_batch_pacer.record_refusal(error.retry_after)
        elif endpoint in READ_ENDPOINTS:
            self.read_pacer.record_refusal(error.retry_after)

    def _count_retries(self, state: RetryState) -> None:
        self.throttled_retries += state.throttled_retries
        self.transient_retries += state.transient_retries

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from facebook_catalog.get_provider_info import HIDDEN_FIELDS, PLACEHOLDERS, RELABELING

        return {"hidden_fields": HIDDEN_FIELDS, "relabeling": RELABELING, "placeholders": PLACEHOLDERS}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for Airflow versions whose connection form is built from widgets."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        from facebook_catalog.get_provider_info import EXTRA_FIELD_HELP as HELP

        return {
            "catalog_id": StringField(
                lazy_gettext("Catalog ID"), widget=BS3TextFieldWidget(), description=HELP["catalog_id"]
            ),
            "app_secret": PasswordField(
                lazy_gettext("App secret"), widget=BS3PasswordFieldWidget(), description=HELP["app_secret"]
            ),
            "api_version": StringField(
                lazy_gettext("API version"), widget=BS3TextFieldWidget(), description=HELP["api_version"]
            ),
        }


class FacebookCatalogHook(_FacebookCatalogHookBase):
    """Synchronous Graph API client for one catalog.

    :param facebook_catalog_conn_id: Airflow connection of type ``facebook_catalog``.
    :param catalog_id: overrides the connection's ``catalog_id`` extra.
    :param retry_policy: how transient errors and throttling are retried.
    :param request_timeout: seconds to wait for one answer.
    """

    @cached_property
    def settings(self) -> GraphApiSettings:
        from airflow.providers.common.compat.sdk import mask_secret

        conn = self.get_connection(self.facebook_catalog_conn_id)
        settings = self._settings_from(conn, conn.extra_dejson)
        for secret in settings.secrets:
            mask_secret(secret)
        return settings

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update({"User-Agent": "airflow-provider-facebook-catalog"})
        return session

    def close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def send_items_batch(self, payload: bytes | str, request_count: int) -> ItemsBatchResponse:
        """Post one items_batch call (``payload`` is the encoded ``requests`` array).

        Returns the handle (None when Meta ingested nothing) and Meta's validation_status.
        """
        settings = self.settings
        data = _payload_bytes(payload)
        return self._post_batch(
            items_batch_form(settings, data), settings.items_batch_url, ITEMS_BATCH, request_count, len(data)
        )

    def send_localized_items_batch(self, payload: bytes | str, request_count: int) -> ItemsBatchResponse:
        """Post one localized_items_batch call (``payload``: the encoded ``requests`` array of
        overrides), paced with items_batch: both spend the catalog's Catalog Batch budget."""
        settings = self.settings
        data = _payload_bytes(payload)
        return self._post_batch(
            localized_items_batch_form(settings, data),
            settings.localized_items_batch_url,
            LOCALIZED_ITEMS_BATCH,
            request_count,
            len(data),
        )

    def _post_batch(
        self, form: list[tuple[str, str | bytes]], url: str, endpoint: str, request_count: int, size: int
    ) -> ItemsBatchResponse:
        """One call to a Catalog Batch endpoint, paced by the catalog's Catalog Batch budget."""
        files = [(name, (None, value)) for name, value in form]
        wait = self._items_batch_pause()
        if wait:
            time.sleep(wait)
        body = self._call("POST", url, endpoint, files=files)
        self.items_batch_pacer.record_accepted()
        response = parse_items_batch_response(body, request_count)
        self.log.info(
            "%s: %d requests, %d bytes -> handle %s", endpoint, request_count, size, response.handle
        )
        return response

    def get_batch_status(self, handle: str) -> BatchStatus:
        settings = self.settings
        body = self._call(
            "GET", settings.batch_status_url, BATCH_STATUS, params=batch_status_params(settings, handle)
        )
        return parse_batch_status_response(body, handle)

    def get_catalog(self, retry_policy: GraphApiRetryPolicy | None = None) -> dict[str, Any]:
        """The catalog's id, name and product_count: a cheap call that proves token and catalog."""
        settings = self.settings
        body = self._call(
            "GET", settings.catalog_url, CATALOG, params=catalog_params(settings), retry_policy=retry_policy
        )
        return body if isinstance(body, dict) else {}

    def iter_product_pages(
        self,
        fields: Sequence[str] = CATALOG_READ_FIELDS,
        *,
        retailer_ids: Iterable[str] | None = None,
        product_filter: str | None = None,
        page_size: int = DEFAULT_PRODUCTS_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """The catalog's items as the products edge shows them, one page (list of dicts) at a time.

        ``retailer_ids`` reads only those items (chunked into retailer_id filters; ids Meta does
        not have are simply absent); ``product_filter`` is Meta's JSON filter, ANDed with it.
        """
        settings = self.settings
        for read_filter in _read_filters(retailer_ids, product_filter):
            cursor = ProductsCursor(settings, fields, product_filter=read_filter, page_size=page_size)
            request: tuple[str, dict[str, str]] | None = cursor.first_request()
            while request is not None:
                wait = self._read_pause(PRODUCTS)
                if wait:
                    time.sleep(wait)
                url, params = request
                page = parse_products_page(self._call("GET", url, PRODUCTS, params=params))
                self._read_done()
                if page.items:
                    yield page.items
                request = cursor.next_request(page)

    def iter_products(
        self, fields: Sequence[str] = CATALOG_READ_FIELDS, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """:meth:`iter_product_pages`, item by item."""
        for page in self.iter_product_pages(fields, **kwargs):
            yield from page

    def get_diagnostics(self) -> list[dict[str, Any]]:
        """The catalog's diagnostics groups (type, title, severity, number_of_affected_items, ...)."""
        settings = self.settings
        wait = self._read_pause(DIAGNOSTICS)
        if wait:
            time.sleep(wait)
        body = self._call("GET", settings.diagnostics_url, DIAGNOSTICS, params=diagnostics_params(settings))
        self._read_done()
        return parse_diagnostics(body)

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: one call, no retries, so the UI answers at once."""
        try:
            catalog = self.get_catalog(retry_policy=NO_RETRIES)
        except MissingCatalogIdError:
            return False, MISSING_CATALOG_ID_ON_CONNECTION
        except Exception as exc:
            return False, str(exc)
        return True, f"Reached catalog {catalog.get('id')} ({catalog.get('name', 'unnamed')})."

    def _call(
        self,
        method: str,
        url: str,
        endpoint: str,
        retry_policy: GraphApiRetryPolicy | None = None,
        **kwargs: Any,
    ) -> Any:
        settings = self.settings
        state = (retry_policy or self.retry_policy).start()
        try:
            while True:
                try:
                    return self._call_once(method, url, endpoint, settings, **kwargs)
                except GraphApiError as error:
                    self._note_refusal(endpoint, error)
                    delay = state.next_delay(error)
                    if delay is None:
                        raise
                    self._log_retry(state, error, delay)
                    time.sleep(delay)
        finally:
            self._count_retries(state)

    def _call_once(
        self, method: str, url: str, endpoint: str, settings: GraphApiSettings, **kwargs: Any
    ) -> Any:
        try:
            response = self.session.request(
                method,
                url,
                headers=auth_headers(settings),
                timeout=(min(30.0, self.request_timeout), self.request_timeout),
                **kwargs,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise connection_error(exc, endpoint, settings) from None
        if response.status_code >= 400:
            raise error_from_response(
                http_status=response.status_code,
                body=response.text,
                headers=response.headers,
                endpoint=endpoint,
                settings=settings,
            )
        return parse_json_body(response.text, endpoint)


class FacebookCatalogAsyncHook(_FacebookCatalogHookBase):
    """Asynchronous Graph API client for triggers: aiohttp only, nothing blocks the event loop."""

    def __init__(self, *args: Any, status_concurrency: int = DEFAULT_STATUS_CONCURRENCY, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.status_concurrency = status_concurrency
        self._settings: GraphApiSettings | None = None

    async def get_settings(self) -> GraphApiSettings:
        if self._settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.facebook_catalog_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
            self._settings = self._settings_from(conn, extra)
            await _amask(self._settings.secrets)
        return self._settings

    def new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            headers={"User-Agent": "airflow-provider-facebook-catalog"},
        )

    async def send_items_batch(
        self, payload: bytes | str, request_count: int, session: aiohttp.ClientSession | None = None
    ) -> ItemsBatchResponse:
        settings = await self.get_settings()
        wait = self._items_batch_pause()
        if wait:
            await asyncio.sleep(wait)
        body = await self._post_items_batch(session, settings, _payload_bytes(payload))
        self.items_batch_pacer.record_accepted()
        return parse_items_batch_response(body, request_count)

    async def get_batch_status(
        self, handle: str, session: aiohttp.ClientSession | None = None, deadline: float | None = None
    ) -> BatchStatus:
        settings = await self.get_settings()
        body = await self._call(
            session,
            "GET",
            settings.batch_status_url,
            BATCH_STATUS,
            deadline=deadline,
            params=batch_status_params(settings, handle),
        )
        return parse_batch_status_response(body, handle)

    async def get_batch_statuses(
        self, handles: Sequence[str], session: aiohttp.ClientSession, deadline: float | None = None
    ) -> list[BatchStatus]:
        """Read many handles concurrently over one session; the first error is raised."""
        semaphore = asyncio.Semaphore(max(1, self.status_concurrency))

        async def one(handle: str) -> BatchStatus:
            async with semaphore:
                return await self.get_batch_status(handle, session=session, deadline=deadline)

        return list(await asyncio.gather(*(one(h) for h in handles)))

    async def get_catalog(self, session: aiohttp.ClientSession | None = None) -> dict[str, Any]:
        settings = await self.get_settings()
        body = await self._call(
            session, "GET", settings.catalog_url, CATALOG, params=catalog_params(settings)
        )
        return body if isinstance(body, dict) else {}

    async def iter_product_pages(
        self,
        fields: Sequence[str] = CATALOG_READ_FIELDS,
        *,
        retailer_ids: Iterable[str] | None = None,
        product_filter: str | None = None,
        page_size: int = DEFAULT_PRODUCTS_PAGE_SIZE,
        session: aiohttp.ClientSession | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The synchronous hook's :meth:`FacebookCatalogHook.iter_product_pages`, over aiohttp.

        All pages go over ``session`` (or one session of its own); ``deadline`` (epoch seconds)
        bounds the retries as in :meth:`get_batch_status`.
        """
        settings = await self.get_settings()
        owned = session is None
        active = session or self.new_session()
        try:
            for read_filter in _read_filters(retailer_ids, product_filter):
                cursor = ProductsCursor(settings, fields, product_filter=read_filter, page_size=page_size)
                request: tuple[str, dict[str, str]] | None = cursor.first_request()
                while request is not None:
                    wait = self._read_pause(PRODUCTS)
                    if wait:
                        await asyncio.sleep(wait)
                    url, params = request
                    body = await self._call(active, "GET", url, PRODUCTS, deadline=deadline, params=params)
                    page = parse_products_page(body)
                    self._read_done()
                    if page.items:
                        yield page.items
                    request = cursor.next_request(page)
        finally:
            if owned:
                await active.close()

    async def iter_products(
        self, fields: Sequence[str] = CATALOG_READ_FIELDS, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        async for page in self.iter_product_pages(fields, **kwargs):
            for item in page:
                yield item

    async def get_diagnostics(self, session: aiohttp.ClientSession | None = None) -> list[dict[str, Any]]:
        settings = await self.get_settings()
        wait = self._read_pause(DIAGNOSTICS)
        if wait:
            await asyncio.sleep(wait)
        body = await self._call(
            session, "GET", settings.diagnostics_url, DIAGNOSTICS, params=diagnostics_params(settings)
        )
        self._read_done()
        return parse_diagnostics(body)

    async def _post_items_batch(
        self, session: aiohttp.ClientSession | None, settings: GraphApiSettings, payload: bytes
    ) -> Any:
        fields = items_batch_form(settings, payload)

        def build_form() -> aiohttp.FormData:
            import aiohttp

            # Text fields, not bytes: aiohttp would turn bytes into a file upload.
            form = aiohttp.FormData(default_to_multipart=True)
            for name, value in fields:
                form.add_field(name, value.decode() if isinstance(value, bytes) else value)
            return form

        return await self._call(session, "POST", settings.items_batch_url, ITEMS_BATCH, form=build_form)

    async def _call(
        self,
        session: aiohttp.ClientSession | None,
        method: str,
        url: str,
        endpoint: str,
        *,
        deadline: float | None = None,
        form: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        settings = await self.get_settings()
        state = self.retry_policy.start(deadline)
        owned = session is None
        active = session or self.new_session()
        try:
            while True:
                try:
                    return await self._call_once(active, method, url, endpoint, settings, form, params)
                except GraphApiError as error:
                    self._note_refusal(endpoint, error)
                    delay = state.next_delay(error)
                    if delay is None:
                        raise
                    self._log_retry(state, error, delay)
                    await asyncio.sleep(delay)
        finally:
            self._count_retries(state)
            if owned:
                await active.close()

    async def _call_once(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        endpoint: str,
        settings: GraphApiSettings,
        form: Any,
        params: dict[str, str] | None,
    ) -> Any:
        import aiohttp

        try:
            async with session.request(
                method,
                url,
                headers=auth_headers(settings),
                params=params,
                data=form() if callable(form) else form,
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise error_from_response(
                        http_status=response.status,
                        body=text,
                        headers=response.headers,
                        endpoint=endpoint,
                        settings=settings,
                    )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise connection_error(exc, endpoint, settings) from None
        return parse_json_body(text, endpoint)


async def _amask(secrets: Sequence[str]) -> None:
    """Register secrets with Airflow's masker without a blocking call on the event loop."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3: the connection lookup already masked password and extras
        return
    for secret in secrets:
        await amask_secret(secret)
