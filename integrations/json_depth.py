"""How deeply a JSON text nests, measured on its bytes before any parser recurses into it.

Python's json module recurses once per level of nesting: a body of a few thousand `[` raises
RecursionError in the parser, and a body just under the interpreter's limit parses, then overflows
whatever walks the result next. So a body is measured first, and nothing here recurses: strings
are cut out (a bracket inside a string is text), the rest is reduced to its brackets, and one
regular expression tells whether they open more than `limit` levels. Every step is linear in the
body and runs in C. A body with no more openers than the limit, as every real notification, costs
one `bytes.translate`.

The scan agrees with a JSON parser on every valid text, and on an invalid one up to the point where
the parser fails (a parser never nests past its first error), so no text the scan passes can make
the parser recurse deeper than the limit.
"""

import functools
import re

# A string runs from its opening quote to the next unescaped quote; one that is never closed runs
# to the end of the body (the parser stops there too). Written unrolled, so that no input makes the
# regex backtrack: each byte is matched one way only, and every attempt at a quote succeeds.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_AN_OPENER = bytes(set(range(256)) - set(b"[{"))
# Objects and arrays nest alike: both are read as `[` / `]`, every other byte is dropped.
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")
_NOT_A_BRACKET = bytes(set(range(256)) - set(b"[]{}"))


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    """True when the JSON text `raw` opens more than `limit` objects or arrays inside each other."""
    if len(raw.translate(None, _NOT_AN_OPENER)) <= limit:
        return False  # not enough openers to go deeper, wherever they are
    brackets = _STRING.sub(b"", raw).translate(_OBJECTS_AS_ARRAYS, _NOT_A_BRACKET)
    return _deeper_than(limit).match(brackets) is not None


@functools.cache
def _deeper_than(limit: int) -> re.Pattern[bytes]:
    """Matches a string of brackets whose depth passes `limit` before it first goes below zero.

    Up to the first time it reaches depth limit + 1, such a string is, at each depth d from 0 to
    limit, a run of closed groups at most limit - d deep, then one more `[`. A closed group at most
    k deep is `[` + closed groups at most k - 1 deep + `]`. The runs are possessive: a group that
    fits is always taken whole, never given back, so the match is linear (a group too deep to fit
    is read once more, as the next `[`, at most once per level)."""
    closed_groups = [b""]  # closed_groups[k]: a run of closed groups at most k deep
    for depth in range(1, limit + 1):
        closed_groups.append(rb"(?:\[" + closed_groups[depth - 1] + rb"\])*+")
    return re.compile(b"".join(closed_groups[limit - depth] + rb"\[" for depth in range(limit + 1)))
