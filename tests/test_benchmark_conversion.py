"""The conversion benchmark runs end to end on a tiny size and sends nothing to any broker (it
used to leave the claim's task messages in the demo's filesystem queue)."""

import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from kombu.messaging import Producer


@pytest.mark.django_db(transaction=True)
def test_benchmark_conversion_leaves_no_task_message_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[Any] = []
    monkeypatch.setattr(Producer, "publish", lambda self, *args, **kwargs: published.append(args))
    output = io.StringIO()

    call_command("benchmark_conversion", rows=300, naive_rows=20, repeat=1, stdout=output)

    report = output.getvalue()
    assert "rows=300 distribution: ours" in report
    withheld = re.search(r"(\d+) task messages withheld from the broker", report)
    assert withheld is not None
    assert int(withheld.group(1)) >= 1  # the claim did enqueue its first step after commit...
    assert published == []  # ...and no message left for any broker
