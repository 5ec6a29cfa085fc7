"""A valid PRODUCT_ITEM record for the emulator's validation tests."""

from __future__ import annotations

from typing import Any


def product(retailer_id: str = "sku-1", **overrides: Any) -> dict[str, Any]:
    """Every required field, all valid; ``overrides`` replace or add fields."""
    item: dict[str, Any] = {
        "id": retailer_id,
        "title": "Blue mug",
        "description": "A blue mug.",
        "availability": "in stock",
        "condition": "new",
        "price": "9.99 USD",
        "link": "https://shop.example/mug",
        "image_link": "https://shop.example/mug.jpg",
        "brand": "Mugs Inc",
    }
    item.update(overrides)
    return item
