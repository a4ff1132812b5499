"""A key past its rate gets 429 with Retry-After; another key is not affected."""

from django.test import override_settings

from .conftest import Api, MakeApi


def test_past_its_rate_a_key_gets_429_with_retry_after(gateway: Api, make_api: MakeApi) -> None:
    with override_settings(PGP_API_RATE="3/min"):
        assert [gateway.get("/api/v1/clients/").status_code for _ in range(3)] == [200] * 3
        refused = gateway.get("/api/v1/clients/")
        assert refused.status_code == 429
        assert 0 < int(refused["Retry-After"]) <= 60
        assert make_api().get("/api/v1/clients/").status_code == 200
