"""items unit: small records owned by the caller (staff and admins see every item)."""

from imangor.runtime import Context, Deploy, Unit
from imangor.schemas.common import PageQuery
from imangor.schemas.items import ItemIn, ItemOut, ItemPage, ItemPatch, ItemPath

unit = Unit("items", Deploy(needs=("database", "redis")))


@unit.get("/items/")
def list_items(query: PageQuery, ctx: Context) -> ItemPage:
    """List your items, newest first (staff: every item)."""
    from imangor.services import items

    return items.list_items(ctx.db, ctx.user, query)


@unit.post("/items/", status=201)
def create_item(body: ItemIn, ctx: Context) -> ItemOut:
    """Create an item owned by you."""
    from imangor.services import items

    item = items.create_item(ctx.db, ctx.user, body)
    ctx.response_headers["Location"] = f"/items/{item.id}"
    return item


@unit.get("/items/{item_id}", preload=("Item", "item_id"))
def read_item(path: ItemPath, ctx: Context) -> ItemOut:
    """Read one of your items (another user's item is a 404)."""
    from imangor.services import items

    return items.get_item(ctx.db, ctx.user, path.item_id)


@unit.patch("/items/{item_id}")
def update_item(path: ItemPath, body: ItemPatch, ctx: Context) -> ItemOut:
    """Change the title or description of one of your items."""
    from imangor.services import items

    return items.update_item(ctx.db, ctx.user, path.item_id, body)


@unit.delete("/items/{item_id}")
def delete_item(path: ItemPath, ctx: Context) -> None:
    """Delete one of your items."""
    from imangor.services import items

    items.delete_item(ctx.db, ctx.user, path.item_id)


items = unit.entry_point()
