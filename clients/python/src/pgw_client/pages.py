"""The gateway's one pagination shape, `{"items": [...], "next": cursor or null}`, and
iterators that follow `next` with `cursor=` until the last page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict

Item = TypeVar("Item")
Filters = ParamSpec("Filters")


class Page(BaseModel, Generic[Item]):
    """One page of a list; `next` is an opaque cursor, None on the last page."""

    model_config = ConfigDict(extra="ignore")

    items: list[Item]
    next: str | None = None


def paginate(list_page: Callable[Filters, Page[Item]], /, *args: Filters.args,
             **filters: Filters.kwargs) -> Iterator[Item]:
    """Every item of a list operation, page after page, fetched as the iteration reaches them:
    `paginate(gw.dsr.list_requests, status=DsrStatus.COMPLETED)`. The filters are the
    operation's own arguments (type-checked as such); `cursor` is set from each page's `next`."""
    while True:
        page = list_page(*args, **filters)
        yield from page.items
        if not page.next:
            return
        filters["cursor"] = page.next


async def apaginate(list_page: Callable[Filters, Awaitable[Page[Item]]], /,
                    *args: Filters.args, **filters: Filters.kwargs) -> AsyncIterator[Item]:
    """`paginate` for the async client: `async for dsr in apaginate(agw.dsr.list_requests)`."""
    while True:
        page = await list_page(*args, **filters)
        for item in page.items:
            yield item
        if not page.next:
            return
        filters["cursor"] = page.next
