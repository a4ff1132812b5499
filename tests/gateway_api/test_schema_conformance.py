"""schemathesis runs every operation of the served schema against the app (in-process, WSGI) with
a gateway key: every answer conforms to the schema (status, content type, headers, body) and none
is a 5xx. Slow (hypothesis generates many requests per operation): the end-to-end tier."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from pytest_django.fixtures import SettingsWrapper
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from pgp_project.wsgi import application

from ..factories import AccumulationFactory, ClientFactory, PaymentFactory, PayoutBatchFactory
from .conftest import Api, MakeApi


@pytest.fixture
def gateway_key(transactional_db: None, make_api: MakeApi, settings: SettingsWrapper) -> Api:
    # Committed rows, and each request in autocommit as in production (not inside the test's
    # transaction, which one refused statement would abort for every later request).
    settings.PGP_API_RATE = "100000/min"  # the run sends thousands of requests with one key
    shop = ClientFactory.create(external_id="-1001")
    AccumulationFactory.create(client=shop)
    PaymentFactory.create(client=shop)
    PayoutBatchFactory.create(client=shop)
    return make_api()


@pytest.fixture
def api_schema(gateway_key: Api) -> Iterator[Any]:
    # As Django's test client does: the test's transaction must outlive each request, which
    # otherwise closes the connection at its end.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_and_never_answers_5xx(case: Any, gateway_key: Api) -> None:
    # Every check but the two that judge our input rules against the schema's: "schema-valid data
    # is accepted" (the money rules the admin applies, such as a wallet address valid for its
    # network, and an Idempotency-Key reused with another body, are refused with a 4xx the schema
    # cannot foresee) and "schema-violating data is rejected" (it flags requests whose violation it
    # cannot name; the invalid inputs it found, a bad page size or time, are refused and tested in
    # test_views). Invalid requests are still generated and sent: none may get a 5xx.
    case.call_and_validate(
        headers={"Authorization": f"Api-Key {gateway_key.secret}"},
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )
