"""A FastAPI service: buy now, wait later — and survive a deploy.

``POST /numbers`` answers at once with the id and the phone; the client waits for the code in its
own task and finishes (or cancels) the number whether or not anyone asks again; ``GET
/numbers/{id}`` reads its state; ``GET /numbers/{id}/code`` long-polls for the code, a few seconds
at most (``202`` with ``Retry-After``: ask again), so that a shutdown never waits on it.

A deploy loses nothing when the service has a journal (``SMSACTIVATE_STORE=sqlite:///…`` or
``redis://…``) and a stable ``SMSACTIVATE_OWNER``: at shutdown the lifespan suspends the numbers
still waiting instead of cancelling them (``suspend_on_close``), the next process of the same owner
resumes them when it opens (``sms.handle(id)`` finds them: the service keeps no handles of its own),
and each caller's next poll gets its code. While the service stops, its answers about a number are
``503`` with ``Retry-After`` — never a ``500`` for a paid number; a purchase then buys nothing.

The client is made at import time (not opened), so that its webhook receiver can be mounted with
the app; the lifespan opens and closes it (a second lifespan opens it afresh).

Run: SMSACTIVATE_API_KEY=... SMSACTIVATE_STORE=sqlite:///service.db SMSACTIVATE_OWNER=web-1 uvicorn fastapi_service:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from smsactivate_async import (
    ActivationHandle,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    InsufficientBalanceError,
    InvalidArgumentError,
    NoNumbersError,
    PurchaseUncertainError,
    RateLimitedError,
    SMSActivate,
    SMSActivateError,
    WaitTimeoutError,
)

#: a long poll's bound: well inside uvicorn's shutdown (it waits for open requests before the lifespan ends)
LONG_POLL_SECONDS = 5.0
STORE = os.environ.get("SMSACTIVATE_STORE")  # a journal: numbers survive a deploy
sms = SMSActivate(os.environ.get("SMSACTIVATE_API_KEY", "set-SMSACTIVATE_API_KEY"), provider="herosms",
                  base_url=os.environ.get("SMSACTIVATE_BASE_URL"), store=STORE,
                  owner=os.environ.get("SMSACTIVATE_OWNER"), suspend_on_close=STORE is not None)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # opened here (resuming what this owner suspended at its last shutdown); at shutdown, with a journal
    # the numbers still waiting are suspended for the next process, without one they are closed
    async with sms:
        yield


app = FastAPI(lifespan=lifespan)
# The provider's pushes; register https://your.host/sms/<secret> with it. Mountable before the
# client is opened. (Read at request time, so a test may swap `sms` before the app starts.)
app.mount("/sms", sms.webhook_app("/", secret=os.environ.get("WEBHOOK_SECRET")))


def http_error(error: SMSActivateError) -> HTTPException:
    """From the library's errors to HTTP answers your callers can act on."""
    if isinstance(error, ClientClosedError):
        return HTTPException(503, "the service is restarting; nothing was lost: ask again",
                             headers={"Retry-After": "5"})
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
    seen[handle.activation_id] = handle
    return describe(handle)


def find(activation_id: int) -> ActivationHandle:
    """The number's handle: live, or resumed after a restart (the client keeps them, not the service)."""
    if sms.closing:
        raise HTTPException(503, "the service is restarting; ask again", headers={"Retry-After": "5"})
    try:
        handle = seen[activation_id] = sms.handle(activation_id)
    except SMSActivateError:
        if activation_id in seen:  # ended: its last state, for the caller's last poll
            return seen[activation_id]
        raise HTTPException(404, "no such number") from None
    return handle


#: handles this process has shown, for a caller's last poll once their number ended (the client drops
#: a handle when it is done with it); in a real service, your database
seen: dict[int, ActivationHandle] = {}


@app.get("/numbers/{activation_id}")
async def state(activation_id: int) -> dict[str, object]:
    return describe(find(activation_id))


@app.get("/numbers/{activation_id}/code", response_model=None)
async def code(activation_id: int) -> dict[str, object] | JSONResponse:
    """The code, waiting for it a few seconds at most: 202 and Retry-After while there is none yet."""
    handle = find(activation_id)
    if handle.code is None:
        try:
            await handle.wait_for_code(timeout=LONG_POLL_SECONDS)
        except WaitTimeoutError as error:
            if error.outcome == "waiting":  # only this poll's time ran out: the number is still waited on
                return JSONResponse(describe(handle), status_code=202, headers={"Retry-After": "1"})
        except ClientClosedError:  # the service began to stop under this poll: nothing is lost
            return JSONResponse(describe(handle), status_code=503, headers={"Retry-After": "5"})
        except SMSActivateError:
            pass  # the number ended without a code: its state says how
    return describe(handle)


def describe(handle: ActivationHandle) -> dict[str, object]:
    account = handle.account
    return {"id": handle.activation_id, "phone": handle.phone_number, "state": handle.state.value,
            "code": handle.code, "error": handle.error.code if handle.error else None,
            "outcome": account.outcome, "message": account.describe()}
