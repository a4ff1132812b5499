"""A client's external id: the channel id a payment's order_id names (`PGP-{user_id}|{external_id}`).

It is matched exactly against what NOWPayments sends, and shown to operators in lists, statements
and file names, so it holds no character that is invisible or ambiguous there or that breaks
order_id: no whitespace (of any script), no control character, no invisible format character
(zero-width, bidirectional overrides: they make one id look like another), no quote (' " `) and
no `|` (order_id's separator).

One character class, written out (not derived from the running Python's Unicode tables, which
would change the database constraint with each Python), serves both the model's validator and
the database CHECK constraint; a test checks both agree and cover every whitespace, control (Cc)
and format (Cf) character Python knows.
"""

import re
import unicodedata

from django.core.exceptions import ValidationError

# A bracket expression both Python's `re` and PostgreSQL's regular expressions read the same way
# (literal characters and ranges of them, nothing escaped). NUL is left out: PostgreSQL text can
# never hold it, and the pattern itself could not be sent.
FORBIDDEN_CHARACTER_CLASS = (
    "["
    "\x01-\x20"  # C0 controls, tab, line feed, carriage return, space
    "\x7f-\xa0"  # DEL, C1 controls (NEL among them), no-break space
    "\xad"  # soft hyphen
    "\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"  # Arabic and Syriac format characters
    "\u1680"  # Ogham space
    "\u180e"  # Mongolian vowel separator
    "\u2000-\u200f"  # typographic spaces, zero-width space and joiners, LRM, RLM
    "\u2028-\u202f"  # line and paragraph separators, bidirectional embeddings and overrides
    "\u205f-\u2064\u2066-\u206f"  # math space, word joiner, invisible operators, isolates
    "\u3000"  # ideographic space
    "\ufeff"  # byte order mark (zero-width no-break space)
    "\ufff9-\ufffb"  # interlinear annotation
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"  # language tags
    "'\"`|"
    "]"
)
_FORBIDDEN = re.compile(FORBIDDEN_CHARACTER_CLASS.replace("[", "[\x00", 1))

EXTERNAL_ID_RULE = (
    "An external id cannot contain whitespace, control or invisible characters, quotes (' \" `) or |: "
    "it is the channel id in a payment's order_id, PGP-{user_id}|{external_id}."
)


def validate_external_id(value: str) -> None:
    """Raise ValidationError, naming the first refused character, unless `value` is a valid id."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return
    character = found.group()
    name = unicodedata.name(character, "a control character")
    raise ValidationError(
        f"{EXTERNAL_ID_RULE} Found U+{ord(character):04X} ({name}) at position {found.start() + 1}.",
        code="external_id_format",
    )
