"""The suite's two tiers (tests/conftest.py): every test is in exactly one, a unit test needs no
worker, chain, sandbox exchange, server or browser, and one that reaches for them anyway fails.
These are unit tests themselves, so they run wherever the unit tier runs."""

import subprocess
import sys

import pytest

from ..conftest import END_TO_END_FIXTURES, is_end_to_end


def test_every_test_is_in_exactly_one_tier_and_no_unit_test_needs_an_end_to_end_fixture(
    request: pytest.FixtureRequest,
) -> None:
    items = request.session.items  # what this run selected: with `-m unit`, the unit tier only
    assert request.node in items
    for item in items:
        tiers = [name for name in ("unit", "end_to_end") if item.get_closest_marker(name)]
        assert len(tiers) == 1, (item.nodeid, tiers)
        if tiers == ["unit"]:
            assert not is_end_to_end(item), item.nodeid
            assert not END_TO_END_FIXTURES.intersection(getattr(item, "fixturenames", ())), item.nodeid
            assert item.get_closest_marker("slow") is None, item.nodeid


def test_the_unit_tier_runs_before_the_end_to_end_tier(request: pytest.FixtureRequest) -> None:
    tiers = [item.get_closest_marker("unit") is None for item in request.session.items]
    assert tiers == sorted(tiers)


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "celery", "-A", "pgp_project", "worker"],
        ["anvil", "--port", "0"],
        [sys.executable, "-m", "gunicorn", "pgp_project.wsgi"],
        [sys.executable, "manage.py", "runserver"],
    ],
    ids=["worker", "chain", "gunicorn", "runserver"],
)
def test_a_unit_test_cannot_start_a_worker_chain_or_server(argv: list[str]) -> None:
    with pytest.raises(RuntimeError, match="is in the unit tier but starts"):
        subprocess.run(argv, capture_output=True, check=False)  # refused before anything is started


def test_a_unit_test_may_start_other_processes() -> None:
    assert subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, check=True).stdout == b"ok\n"


def test_a_unit_test_cannot_ask_for_an_end_to_end_fixture_at_run_time(request: pytest.FixtureRequest) -> None:
    with pytest.raises(pytest.fail.Exception, match="is in the unit tier but asks for local_chain"):
        request.getfixturevalue("local_chain")
