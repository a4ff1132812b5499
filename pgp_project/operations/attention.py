"""What needs a person right now, counted by the apps that know (they register a counter from
`AppConfig.ready`); /health/ reports the total and the breakdown. It never makes the system
unhealthy: a batch in review is work for an operator, not an outage."""

from collections.abc import Callable

AttentionCounter = Callable[[], dict[str, int]]

_COUNTERS: list[AttentionCounter] = []


def register_attention_counter(counter: AttentionCounter) -> None:
    if counter not in _COUNTERS:
        _COUNTERS.append(counter)


def needs_attention() -> dict[str, object]:
    breakdown: dict[str, int] = {}
    for counter in _COUNTERS:
        breakdown.update(counter())
    return {"total": sum(breakdown.values()), "breakdown": breakdown}
