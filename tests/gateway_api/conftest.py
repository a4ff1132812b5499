"""API keys and an HTTP client that sends one."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client as HttpClient
from django.utils import timezone

from gateway_api.keys import create_api_key
from gateway_api.models import ApiKey, KeyKind
from payments.models import Client

from ..factories import ClientFactory


class Api:
    """The test client with `Authorization: Api-Key <secret>` on every request (none: no key)."""

    def __init__(self, secret: str | None, key: ApiKey | None = None) -> None:
        self.http = HttpClient()
        self.secret = secret
        self.key = key

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.secret is not None:
            headers["Authorization"] = f"Api-Key {self.secret}"
        return headers

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.http.get(path, params or {}, headers=self.headers(headers))

    def post(self, path: str, body: Any, **headers: str) -> Any:
        return self.http.post(path, body, content_type="application/json", headers=self.headers(headers))


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()  # the rate limit counts in the cache: each test starts with none used


MakeApi = Callable[..., Api]


@pytest.fixture
def make_api(db: None) -> MakeApi:
    def make(kind: str = KeyKind.GATEWAY, client: Client | None = None, **options: Any) -> Api:
        key, secret = create_api_key(
            name=f"{kind}-{client.pk if client else 'all'}", kind=kind, client=client, **options
        )
        return Api(secret, key)

    return make


@pytest.fixture
def gateway(make_api: MakeApi) -> Api:
    return make_api()


@pytest.fixture
def shop(db: None) -> Client:
    return ClientFactory.create(external_id="-1001", name="shop")


@pytest.fixture
def other_shop(db: None) -> Client:
    return ClientFactory.create(external_id="-1002", name="other shop")


@pytest.fixture
def shop_api(make_api: MakeApi, shop: Client) -> Api:
    return make_api(KeyKind.CLIENT, shop)


@pytest.fixture
def other_shop_api(make_api: MakeApi, other_shop: Client) -> Api:
    return make_api(KeyKind.CLIENT, other_shop)


@pytest.fixture
def expired_api(make_api: MakeApi) -> Api:
    return make_api(expiry_date=timezone.now() - timedelta(minutes=1))
