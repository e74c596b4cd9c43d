"""Read-only views of smart orders (re-exported by `engine.views`, the adapters' one read surface)."""

from __future__ import annotations

from dataclasses import dataclass

from tradehall.engine.engine import Engine


@dataclass(frozen=True, slots=True)
class RouteView:
    """A smart order whose children may still be open: its owner and its children's ids."""

    order_id: int
    account_id: str
    children: tuple[int, ...]
    open_children: tuple[int, ...]


def route(engine: Engine, order_id: int) -> RouteView | None:
    """The smart order `order_id` while the engine remembers it (until it is cancelled); None otherwise:
    the read models keep every smart order."""
    found = engine.state.routes.get(order_id)
    if found is None:
        return None
    orders = engine.orders
    return RouteView(
        order_id=found.parent_id,
        account_id=found.account_id,
        children=tuple(found.children),
        open_children=tuple(child for child in found.children if child in orders),
    )
