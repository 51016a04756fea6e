"""``client.activation()``: one bought number for the length of an ``async with`` block.

A hand-written helper on top of the generated actions and the scheduler: it buys (under a
buying policy when given), waits, and always closes the number — finished after a code,
cancelled otherwise — with the closing request shielded from cancellation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from . import _actions
from ._buying import BuyingPolicy, buy_with_policy
from ._exceptions import ActivationStateError, BadRequestError, InvalidArgumentError, SMSActivateError
from ._models import Number, StatusCode

if TYPE_CHECKING:
    from ._client import SMSActivate

__all__ = ["Activation", "check_options"]

log = logging.getLogger("smsactivate_async")


class Activation:
    """``async with client.activation(service="tg", country=6) as act:`` — one bought number.

    Leaving the block normally after a code finishes it (6); leaving it any other way, or before
    a code, cancels it (8), with the early-cancel deferral. The closing request is shielded from
    cancellation, so a dropped bot handler does not leak the number.
    """

    def __init__(self, client: SMSActivate, options: dict[str, Any], ready: bool, order_id: str | None,
                 policy: BuyingPolicy | None = None) -> None:
        self._client = client
        self._options = options
        self._ready = ready
        self._order_id = order_id
        self._policy = policy
        self._number: Number | None = None
        self._bought_country: int | None = options.get("country")
        self.codes: list[str] = []
        self._closed = False

    @property
    def client(self) -> SMSActivate:
        """The client that bought the number (with a ``ProviderPool``: the provider it came from)."""
        return self._client

    @property
    def country(self) -> int | None:
        """The country it was bought in (with a policy: the choice that sold it)."""
        return self._bought_country

    @property
    def number(self) -> Number:
        if self._number is None:
            raise InvalidArgumentError("the activation is not bought yet: use `async with client.activation(...)`")
        return self._number

    @property
    def activation_id(self) -> int:
        return self.number.activation_id

    @property
    def phone_number(self) -> str:
        return self.number.phone_number

    @property
    def cost(self) -> Any:
        return self.number.activation_cost

    @property
    def code(self) -> str | None:
        """The last code received, if any."""
        return self.codes[-1] if self.codes else None

    async def __aenter__(self) -> Activation:
        options = dict(self._options)
        if self._order_id is not None:
            options["order_id"] = self._order_id
        # Shielded: once sent, a purchase must be seen to its end so that it can be closed.
        with anyio.CancelScope(shield=True):
            if self._policy is None:
                number = await self._client._session.call(_actions.GET_NUMBER_V2, options)
            else:
                service, country = options.pop("service"), options.pop("country")
                number, choice = await buy_with_policy(self._client, service, country, self._policy, options)
                self._bought_country = choice.country
        self._number = number
        if self._ready and self._client.provider.supports_ready:
            try:
                await self._client.set_status(number.activation_id, 1)
            except SMSActivateError as exc:
                log.info("activation %s: status 1 not accepted (%s)", number.activation_id, exc.code)
        return self

    async def wait_for_code(self, *, timeout: float, poll_interval: float | None = None) -> str:
        """The next code (the block's exit cancels the number if none comes)."""
        code = await self._client.wait_for_code(
            self.activation_id, timeout=timeout, poll_interval=poll_interval, cancel_on_timeout=False,
            voice=self._options.get("activation_type") == 2,
        )
        self.codes.append(code)
        return code

    async def request_another_code(self) -> None:
        """Ask for one more code (status 3); the next ``wait_for_code`` ignores the old one."""
        await self._set_status(3, StatusCode.STATUS_WAIT_RETRY, StatusCode.STATUS_WAIT_RESEND)

    async def finish(self) -> None:
        """Finish now (status 6)."""
        with anyio.CancelScope(shield=True):
            await self._set_status(6, StatusCode.STATUS_CANCEL)
            self._closed = True
            self._client._get_scheduler()._forget(self.activation_id)

    async def _set_status(self, status: int, *already: StatusCode) -> None:
        """Set a status; a refusal because the state is already the wanted one (the answer of an
        earlier, lost attempt was the one that counted) is success, confirmed by getStatus."""
        try:
            await self._client.set_status(self.activation_id, status)
        except (ActivationStateError, BadRequestError) as refusal:
            current = await self._client.get_status(self.activation_id)
            if current.status not in already:
                raise refusal from None

    async def cancel(self) -> None:
        """Cancel now (status 8), or as soon as the server allows it."""
        with anyio.CancelScope(shield=True):
            await self._client._get_scheduler().cancel(self.activation_id)
            self._closed = True

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._number is None:
            return
        guard = self._policy.guard if self._policy is not None else None
        if guard is not None:
            guard.record(self._options["service"], self._bought_country, bool(self.codes))
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            try:
                if exc_type is None and self.codes:
                    await self.finish()
                else:
                    await self.cancel()
            except SMSActivateError as error:
                log.error("activation %s could not be closed: %s", self.activation_id, error)
                if exc_type is None:
                    raise


def check_options(options: Mapping[str, Any]) -> None:
    known = {param.name for param in _actions.GET_NUMBER_V2.params}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidArgumentError(f"activation() got unknown argument(s): {', '.join(unknown)}")
