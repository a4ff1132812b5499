"""The conversion benchmark runs end to end on a tiny size and sends nothing to any broker (it
used to leave the claim's task messages in the demo's filesystem queue). Checked on the real
broker: this run's queue in Redis holds no more messages after the benchmark than before."""

import io
import re

import pytest
import redis
from django.conf import settings
from django.core.management import call_command


def queued_messages() -> int:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return int(broker.llen(settings.CELERY_TASK_DEFAULT_QUEUE))


@pytest.mark.django_db(transaction=True)
def test_benchmark_conversion_leaves_no_task_message_behind() -> None:
    before = queued_messages()
    output = io.StringIO()

    call_command("benchmark_conversion", rows=300, naive_rows=20, repeat=1, stdout=output)

    report = output.getvalue()
    assert "rows=300 distribution: ours" in report
    withheld = re.search(r"(\d+) task messages withheld from the broker", report)
    assert withheld is not None
    assert int(withheld.group(1)) >= 1  # the claim did enqueue its first step after commit...
    assert queued_messages() == before  # ...and no message reached the broker
