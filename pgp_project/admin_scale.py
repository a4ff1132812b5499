"""Admin lists that stay fast at tens of millions of rows.

Three things in Django's admin grow with the table, whatever the page shows:

- the paginator counts every matching row (a full COUNT on an unfiltered list);
- a deep page is an OFFSET, which reads and throws away every row before it;
- `search_fields` become `UPPER(col) LIKE UPPER('%term%')`, which no index serves (even `=field`
  is an `iexact` comparison, `UPPER(col) = UPPER(term)`).

`ScaleListMixin` replaces them: a paginator that counts exactly only up to `EXACT_COUNT_UP_TO`
rows and above that shows the planner's estimate, labelled as one; a page count capped at
`MAX_PAGES` (older rows are reached by narrowing the filters, never by a deep OFFSET); and a search
by exact keys, each an equality an index serves. Counts of rows are the only figures estimated:
no money figure comes from here.
"""

import json
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any, ClassVar, cast

from django.contrib.admin import SimpleListFilter
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db.models import Field, Model, Q, QuerySet
from django.http import HttpRequest

# Counting stops here: a bounded read, however large the table (the rows past it are not read).
EXACT_COUNT_UP_TO = 10_000
# 200 pages of 100 rows: the deepest OFFSET reads 20,000 index entries (a few ms).
MAX_PAGES = 200


def planner_estimate(queryset: QuerySet[Any]) -> int:
    """The planner's row estimate for the queryset (EXPLAIN, nothing executed)."""
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Exact count up to EXACT_COUNT_UP_TO rows, the planner's estimate above (`is_estimate`),
    and at most MAX_PAGES pages."""

    is_estimate = False

    @cached_property
    def count(self) -> int:
        # COUNT(*) over a LIMIT-ed subquery: reads at most EXACT_COUNT_UP_TO + 1 rows.
        rows = cast(QuerySet[Any], self.object_list)
        bounded = rows.order_by()[: EXACT_COUNT_UP_TO + 1].count()
        if bounded <= EXACT_COUNT_UP_TO:
            return bounded
        self.is_estimate = True
        return max(EXACT_COUNT_UP_TO + 1, planner_estimate(rows))

    @cached_property
    def num_pages(self) -> int:
        return min(super().num_pages, MAX_PAGES)


class ScaleChangeList(ChangeList):
    """Tells the templates whether the count shown is an estimate."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_count_is_estimate = getattr(self.paginator, "is_estimate", False)
        self.pages_capped = self.result_count_is_estimate or self.paginator.num_pages >= MAX_PAGES


def _exact_value(field: Field, term: str) -> Any:
    """The term as the field's value, or None when it cannot be one (letters for an integer id)."""
    try:
        value = field.to_python(term)
        field.get_prep_value(value)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return None  # outside bigint: PostgreSQL would refuse the comparison
    return value


def _field_at(model: type[Model], path: str) -> Field:
    """The field a lookup path such as `payment__order_id` ends at."""
    field: Any = None
    for part in path.split("__"):
        field = model._meta.get_field(part)
        if field.is_relation and field.related_model is not None and part != path.split("__")[-1]:
            model = field.related_model
    if field is None:
        raise FieldDoesNotExist(path)
    return field


def exact_search(model: type[Model], fields: Sequence[str], term: str) -> Q | None:
    """`field = term` for every field the term can be a value of; text is also tried in lower
    case (addresses and hashes are often pasted in another case than stored). None when the term
    fits no field."""
    term = term.strip()
    if not term:
        return None
    found = Q()
    matched = False
    for path in fields:
        field = _field_at(model, path)
        value = _exact_value(field, term)
        if value is None or value == "":
            continue
        matched = True
        found |= Q(**{path: value})
        if isinstance(value, str) and value.lower() != value:
            found |= Q(**{path: value.lower()})
    return found if matched else None


class ScaleListMixin:
    """For a ModelAdmin over a table that grows without bound: see the module's docstring.

    `exact_search_fields` are the lookup paths an operator's search term is compared with, by
    equality; each should be the leading column of an index (or a small table's)."""

    exact_search_fields: ClassVar[tuple[str, ...]] = ()
    show_full_result_count = False
    paginator: ClassVar[type] = EstimatedCountPaginator

    model: type[Model]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ScaleChangeList

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Non-empty, so the admin shows its search box; the search itself is get_search_results.
        return self.exact_search_fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        found = exact_search(self.model, self.exact_search_fields, search_term)
        if found is None:
            return queryset.none(), False
        return queryset.filter(found), False


def choices_filter(field: str, title: str, lookups: Callable[[], Iterable[tuple[str, str]]]) -> type[SimpleListFilter]:
    """A list filter on `field` offering the values `lookups()` names (a registry, the settings):
    the admin's default filter for a text column without choices reads every row of the table for
    its distinct values."""

    class ChoicesFilter(SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return list(lookups())

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    ChoicesFilter.title = title
    ChoicesFilter.__name__ = f"{field.title().replace('_', '')}ChoicesFilter"
    return ChoicesFilter
