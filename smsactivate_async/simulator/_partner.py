"""The partner shop: buyPartnerProduct.

Each handler is a small function registered for its wire action; it reads and changes the
simulator's state and answers through the dialect's renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from ._common import (
    _Reply,
)
from ._core import Account
from ._handlers import handles
from ._ledger import PurchaseRecord

if TYPE_CHECKING:
    from ._handlers import Server

__all__: list[str] = []


@handles("buyPartnerProduct")
def buy_partner_product(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    product = params.get("productId", "")
    if product not in ("1", "2", "3"):
        raise sim.render.fail("BAD_DATA")
    price = Decimal("5")
    if account.balance < price:
        raise sim.render.fail("NO_BALANCE")
    account.balance -= price
    sim.ledger.purchases.append(PurchaseRecord(sim.clock.now(), "product", int(product), account.key, price,
                                                "partner", None))
    return sim.render.json({"status": "success", "key": f"KEY{sim.rng.randrange(10**12):012d}",
                            "manual": "Software download link:"})
