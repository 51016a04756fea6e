"""A FastAPI service: buy now, wait later.

``POST /numbers`` answers at once with the id and the phone; the client waits for the code in its
own task and finishes (or cancels) the number whether or not anyone asks again; ``GET
/numbers/{id}`` reads its state. The client is made at import time (not opened), so that its
webhook receiver can be mounted with the app; the lifespan opens and closes it, and a second
lifespan (a second TestClient) opens it afresh.

Run: SMSACTIVATE_API_KEY=... uvicorn fastapi_service:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from smsactivate_async import (
    ActivationHandle,
    AuthenticationError,
    BadRequestError,
    InsufficientBalanceError,
    InvalidArgumentError,
    NoNumbersError,
    PurchaseUncertainError,
    RateLimitedError,
    SMSActivate,
    SMSActivateError,
)

sms = SMSActivate(os.environ.get("SMSACTIVATE_API_KEY", "set-SMSACTIVATE_API_KEY"), provider="herosms")
#: the numbers bought through this service, by id (in a real service: your database)
handles: dict[int, ActivationHandle] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with sms:  # opened here, closed at shutdown: open numbers are closed, within close_timeout
        yield


app = FastAPI(lifespan=lifespan)
# The provider's pushes; register https://your.host/sms/<secret> with it. Mountable before the
# client is opened. (Read at request time, so a test may swap `sms` before the app starts.)
app.mount("/sms", sms.webhook_app("/", secret=os.environ.get("WEBHOOK_SECRET")))


def http_error(error: SMSActivateError) -> HTTPException:
    """From the library's errors to HTTP answers your callers can act on."""
    if isinstance(error, InvalidArgumentError | BadRequestError):
        return HTTPException(400, f"bad request: {error.code}")
    if isinstance(error, NoNumbersError | RateLimitedError):
        return HTTPException(503, "no numbers right now; retry later", headers={"Retry-After": "30"})
    if isinstance(error, InsufficientBalanceError | AuthenticationError):
        return HTTPException(502, "the provider account needs attention")  # alert yourself, not the caller
    if isinstance(error, PurchaseUncertainError):
        # The number may exist: do not let the caller blindly buy again. The candidates are listed.
        return HTTPException(409, {"detail": "purchase uncertain", "candidates": list(error.candidate_ids)})
    return HTTPException(502, f"provider error: {error.code}")


class Order(BaseModel):
    service: str
    country: int


@app.post("/numbers")
async def buy(order: Order) -> dict[str, object]:
    try:
        handle = await sms.start_activation(service=order.service, country=order.country, timeout=600)
    except SMSActivateError as error:
        raise http_error(error) from None
    handles[handle.activation_id] = handle
    return describe(handle)


@app.get("/numbers/{activation_id}")
async def state(activation_id: int) -> dict[str, object]:
    handle = handles.get(activation_id)
    if handle is None:
        raise HTTPException(404, "no such number")
    return describe(handle)


def describe(handle: ActivationHandle) -> dict[str, object]:
    return {"id": handle.activation_id, "phone": handle.phone_number, "state": handle.state.value,
            "code": handle.code, "error": handle.error.code if handle.error else None}
