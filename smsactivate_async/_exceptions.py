"""The error tree. Every error the library raises derives from :class:`SMSActivateError`.

::

    SMSActivateError                    .code (the wire code, or a synthetic one)
    ├── InvalidArgumentError            (also ValueError) bad input, raised before any request
    ├── APIError                        the server answered with an error code
    │   ├── AuthenticationError         BAD_KEY, NO_KEY, …
    │   ├── InsufficientBalanceError    NO_BALANCE, NO_BALANCE_FORWARD
    │   ├── NoNumbersError              NO_NUMBERS, OUT_OF_STOCK, …
    │   ├── AccountRestrictedError
    │   │   ├── BannedError             BANNED (.until)
    │   │   └── ChannelsLimitError      CHANNELS_LIMIT (.current, .max_allowed)
    │   ├── BadRequestError             BAD_ACTION, BAD_SERVICE, BAD_STATUS, WRONG_*, …
    │   │   └── WrongMaxPriceError      WRONG_MAX_PRICE (.min_price)
    │   ├── ActivationStateError        the activation cannot do that now
    │   │   ├── ActivationNotFoundError NO_ACTIVATION, NOT_FOUND, WRONG_ACTIVATION_ID, …
    │   │   │   └── RentNotFoundError   NO_ID_RENT
    │   │   ├── ActivationCancelledError STATUS_CANCEL while waiting
    │   │   ├── EarlyCancelDeniedError  EARLY_CANCEL_DENIED (.retry_after)
    │   │   └── RentStateError          STATUS_FINISH, STATUS_REVOKE, CANT_CANCEL, …
    │   ├── OrderAlreadyExistsError     ORDER_ALREADY_EXISTS
    │   ├── RateLimitedError            HTTP 429 / RATE_LIMIT (.retry_after)
    │   └── ServerError                 ERROR_SQL, SQL_ERROR, SERVER_ERROR, HTTP 5xx
    ├── BadResponseError                an answer that cannot be understood (.excerpt)
    │   ├── TruncatedResponseError      JSON cut short
    │   └── WebhookPayloadError         a webhook body that is not a provider's push
    ├── TransportError                  connection failed, request timed out
    ├── RedirectError                   the provider moved: a 3xx to .location (scheme://host)
    ├── StoreError                      the journal's store cannot be reached or used
    ├── ReplayMismatchError             a replayed client asked what the recording does not hold
    ├── PurchaseUncertainError          a purchase may have happened; check .candidate_ids
    ├── SpendingGuardError              a buying policy's guard stopped buying (.reason, .spent)
    ├── WaitTimeoutError                (also TimeoutError) no code within the timeout (.outcome)
    └── ClientClosedError               the client is closing or closed: a purchase after aclose() began,
                                        a wait it ended (.outcome: what became of the number)

The API key never appears in any message: errors are built from the answer body and the action
name only, and lower-layer exceptions are translated without being chained.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ._outcome import NumberOutcome

__all__ = [
    "APIError",
    "AccountRestrictedError",
    "ActivationCancelledError",
    "ActivationNotFoundError",
    "ActivationStateError",
    "AuthenticationError",
    "BadRequestError",
    "BadResponseError",
    "BannedError",
    "ChannelsLimitError",
    "ClientClosedError",
    "EarlyCancelDeniedError",
    "InsufficientBalanceError",
    "InvalidArgumentError",
    "NoNumbersError",
    "OrderAlreadyExistsError",
    "PurchaseUncertainError",
    "RateLimitedError",
    "RedirectError",
    "ReplayMismatchError",
    "RentNotFoundError",
    "RentStateError",
    "SMSActivateError",
    "ServerError",
    "StoreError",
    "TransportError",
    "TruncatedResponseError",
    "SpendingGuardError",
    "WaitTimeoutError",
    "WebhookPayloadError",
    "WrongMaxPriceError",
    "error_for_code",
    "excerpt",
]

_EXCERPT_LIMIT = 200


def excerpt(body: str | bytes, limit: int = _EXCERPT_LIMIT) -> str:
    """A short, printable piece of an answer body for error messages."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = body if len(body) <= limit else body[:limit] + f"… ({len(body)} chars)"
    return repr(text)


class SMSActivateError(Exception):
    """Root of every error raised by smsactivate_async. ``code`` is the wire code."""

    default_code = "ERROR"

    def __init__(self, message: str = "", *, code: str | None = None, action: str | None = None) -> None:
        self.code: str = code or self.default_code
        self.action = action
        self.message = message or self.code
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.action}: " if self.action else ""
        if self.message == self.code or self.message.startswith(f"{self.code}:"):
            return f"{where}{self.message}"  # the wire's own answer names the code: not twice
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, action={self.action!r}, message={self.message!r})"


class InvalidArgumentError(SMSActivateError, ValueError):
    """An argument is invalid; raised before any request is sent."""

    default_code = "INVALID_ARGUMENT"


class ClientClosedError(SMSActivateError):
    """The client is closed, or closing: a call made after ``aclose()`` began (a purchase is refused
    before anything is sent), or a wait that ``aclose()`` ended.

    For a wait, ``outcome`` (and ``activation_id``, ``cancel_at``, ``reason``) says what became of the
    number — ``"left_open"``, ``"cancel_deferred"``, ``"cancelled"`` or ``"finished"`` — as
    :class:`NumberOutcome` does (``.account``). Not a ``ValueError``: nothing was wrong with the call.
    """

    default_code = "CLIENT_CLOSED"

    def __init__(self, message: str = "", *, activation_id: int | None = None, outcome: str | None = None,
                 cancel_at: _dt.datetime | None = None, reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.activation_id = activation_id
        self.outcome = outcome
        self.cancel_at = cancel_at
        self.reason = reason

    @property
    def account(self) -> NumberOutcome | None:
        """The number's account, for a wait that ``aclose()`` ended."""
        if self.activation_id is None or self.outcome is None:
            return None
        return NumberOutcome(self.activation_id, self.outcome, self.cancel_at, self.reason)  # type: ignore[arg-type]


class APIError(SMSActivateError):
    """The server answered with an error code (``.code``).

    ``details`` is the human text the server gave with it (HeroSMS ``details``), ``info`` its
    structured extras, ``status_code`` the HTTP status.
    """

    default_code = "API_ERROR"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        action: str | None = None,
        details: str | None = None,
        info: Mapping[str, Any] | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or details or "", code=code, action=action)
        self.details = details
        self.info: Mapping[str, Any] = info or {}
        self.status_code = status_code
        self.retry_after = retry_after


class AuthenticationError(APIError):
    """The API key is missing, wrong or the account is not usable."""

    default_code = "BAD_KEY"


class InsufficientBalanceError(APIError):
    """Not enough money on the account: NO_BALANCE, NO_BALANCE_FORWARD."""

    default_code = "NO_BALANCE"


class NoNumbersError(APIError):
    """No number to sell for this service and country right now: NO_NUMBERS and kin."""

    default_code = "NO_NUMBERS"


class AccountRestrictedError(APIError):
    """The account may not buy now (banned, too many concurrent numbers, inactive)."""

    default_code = "ACCOUNT_INACTIVE"


class BannedError(AccountRestrictedError):
    """``until`` is when the ban ends (aware datetime) where the server said so."""

    default_code = "BANNED"

    def __init__(self, message: str = "", *, until: _dt.datetime | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.until = until


class ChannelsLimitError(AccountRestrictedError):
    """Too many numbers open at once: CHANNELS_LIMIT (``current`` and ``max_allowed`` when given)."""

    default_code = "CHANNELS_LIMIT"

    def __init__(self, message: str = "", *, current: int | None = None, max_allowed: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.current = current
        self.max_allowed = max_allowed


class BadRequestError(APIError):
    """The server refused the request's parameters or action."""

    default_code = "BAD_REQUEST"


class WrongMaxPriceError(BadRequestError):
    """``min_price`` is the lowest ``max_price`` the server would accept."""

    default_code = "WRONG_MAX_PRICE"

    def __init__(self, message: str = "", *, min_price: Decimal | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.min_price = min_price


class ActivationStateError(APIError):
    """The activation (or rent) cannot do that in its current state."""

    default_code = "ACTIVATION_STATE"


class ActivationNotFoundError(ActivationStateError):
    """The activation does not exist (or is not this account's): NO_ACTIVATION, NOT_FOUND, WRONG_ACTIVATION_ID."""

    default_code = "NO_ACTIVATION"


class ActivationCancelledError(ActivationStateError):
    """The activation was cancelled (or finished) while a code was awaited."""

    default_code = "STATUS_CANCEL"


class EarlyCancelDeniedError(ActivationStateError):
    """Cancelling is refused during the first minutes; ``retry_after`` says how long, if known."""

    default_code = "EARLY_CANCEL_DENIED"


class RentStateError(ActivationStateError):
    """The rent cannot do that now: STATUS_FINISH, STATUS_REVOKE, CANT_CANCEL, …."""

    default_code = "STATUS_FINISH"


class RentNotFoundError(ActivationNotFoundError):
    """No such rent on this account (``NO_ID_RENT``): a wrong rent id, or one of another key."""

    default_code = "NO_ID_RENT"


class OrderAlreadyExistsError(APIError):
    """This ``order_id`` was bought already: the first purchase succeeded."""

    default_code = "ORDER_ALREADY_EXISTS"


class RateLimitedError(APIError):
    """Too many requests; ``retry_after`` seconds to wait, if the server said."""

    default_code = "RATE_LIMIT"


class ServerError(APIError):
    """The server failed (SQL error, 5xx). Safe actions are retried on it."""

    default_code = "SERVER_ERROR"


class BadResponseError(SMSActivateError):
    """An answer that cannot be understood. ``excerpt`` shows what came back."""

    default_code = "BAD_RESPONSE"

    def __init__(self, message: str, *, body: str | bytes = b"", status_code: int | None = None, **kwargs: Any) -> None:
        self.excerpt = excerpt(body)
        self.status_code = status_code
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"{message}{status}; got {self.excerpt}", **kwargs)


class TruncatedResponseError(BadResponseError):
    """A JSON answer cut short (seen live on large bodies): retried where safe."""

    default_code = "TRUNCATED_RESPONSE"


class SpendingGuardError(SMSActivateError):
    """A buying policy's :class:`SpendingGuard` stopped buying before more money went.

    ``reason`` is ``"budget"``, ``"no_code_streak"``, ``"success_rate"`` (every choice under the
    floor) or ``"above_ceiling"`` (a provider sold above the ceiling; that number was cancelled);
    ``spent`` is what the guard has counted so far.
    """

    default_code = "SPENDING_GUARD"

    def __init__(self, message: str, *, reason: str, spent: Decimal | None = None, **kwargs: Any) -> None:
        self.reason = reason
        self.spent = spent
        super().__init__(message, **kwargs)


class WebhookPayloadError(BadResponseError):
    """A body posted to the webhook receiver that is not a provider's push. ``excerpt`` shows it."""

    default_code = "BAD_WEBHOOK"


class TransportError(SMSActivateError):
    """The request did not complete: connection refused or dropped, or it timed out.

    ``maybe_sent`` tells whether the request may have reached the server (a timeout, a dropped
    connection: ``True``) or surely did not (the connection could not be made: ``False``).
    """

    default_code = "TRANSPORT_ERROR"

    def __init__(self, message: str = "", *, maybe_sent: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.maybe_sent = maybe_sent


class RedirectError(SMSActivateError):
    """The provider answered with a redirect (301/302/303/307/308), which is not followed.

    Following it would send the API key to wherever the redirect points. Providers have moved
    domains several times: ``location`` is the new place's ``scheme://host[:port]`` (never its
    query); check it and set ``base_url`` to the provider's new handler URL.
    """

    default_code = "REDIRECT"

    def __init__(self, message: str, *, location: str | None = None, status_code: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location
        self.status_code = status_code


class StoreError(SMSActivateError):
    """The journal's store (sqlite file, Redis) cannot be reached or used.

    No purchase is sent without its intent written first: a purchase fails with this error rather
    than be made unjournaled. Waiting and closing go on without the store. The message names the
    store without its password. ``unreachable``: the store could not be reached at all (connection
    refused or timed out: an outage, worth waiting for), as opposed to refusing what was asked (a
    wrong password, a bad URL, a missing folder).
    """

    default_code = "STORE_ERROR"

    def __init__(self, message: str = "", *, unreachable: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.unreachable = unreachable


class ReplayMismatchError(SMSActivateError):
    """A client on a :class:`ReplayTransport` sent a request the recording does not hold (there, or
    in that order). Raised at once, never retried. ``action``: the request's; ``differences``: each
    parameter that differs from the nearest recorded request, as ``name → (sent, recorded)``
    (``None`` where one side has none); ``expected``: the parameters of the recorded request the
    order expected next, when there was one."""

    default_code = "REPLAY_MISMATCH"

    def __init__(self, message: str, *, differences: Mapping[str, tuple[str | None, str | None]] | None = None,
                 expected: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.differences = dict(differences or {})
        self.expected = dict(expected) if expected is not None else None


class PurchaseUncertainError(SMSActivateError):
    """A purchase was sent but its answer was lost, and reconciliation could not tell.

    The purchase may have happened: check ``candidate_ids`` (activations or rents that may be it)
    before buying again.
    """

    default_code = "PURCHASE_UNCERTAIN"

    def __init__(self, message: str, *, candidate_ids: tuple[int, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.candidate_ids = candidate_ids


class WaitTimeoutError(SMSActivateError, TimeoutError):
    """No code arrived within the timeout. ``outcome`` says what became of the number.

    - ``"cancelled"``: closed with 8 (the money comes back);
    - ``"finished"``: a code came as the cancel was sent, so it was closed with 6 (when that code
      can still be read and was not returned before, ``wait_for_code`` returns it instead of raising);
    - ``"cancel_deferred"``: the server refused the cancel as too early (or could not be reached);
      the client cancels it in the background from ``cancel_at`` (an aware UTC ``datetime``);
    - ``"left_open"``: ``cancel_on_timeout=False`` — the number is yours to close;
    - ``"waiting"``: only this call's own ``timeout`` ran out (``handle.wait_for_code(timeout=...)``):
      the number is open and the client still waits for its code;
    - ``None``: not decided yet (its cancel was still on the wire a poll interval past the deadline).
    """

    default_code = "WAIT_TIMEOUT"

    def __init__(self, message: str, *, activation_id: int | None = None, outcome: str | None = None,
                 cancel_at: _dt.datetime | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.activation_id = activation_id
        self.outcome = outcome
        self.cancel_at = cancel_at

    @property
    def cancelled(self) -> bool:
        """Whether the number is closed (cancelled, or finished because a code came meanwhile)."""
        return self.outcome in ("cancelled", "finished")


_CODE_CLASSES: dict[str, type[APIError]] = {}


def _register(cls: type[APIError], *codes: str) -> None:
    for code in codes:
        _CODE_CLASSES[code] = cls


_register(AuthenticationError, "BAD_KEY", "NO_KEY", "EMPTY_KEY", "API_KEY_NOT_VALID", "BAD_API_KEY",
          "MISSING_API_KEY", "WRONG_SECURITY", "INVALID_SIGNATURE")
_register(InsufficientBalanceError, "NO_BALANCE", "NO_BALANCE_FORWARD")
_register(NoNumbersError, "NO_NUMBERS", "OUT_OF_STOCK", "NO_PROVIDERS", "SIM_OFFLINE", "NOT_AVAILABLE",
          "SERVICE_NOT_AVAILABLE", "SERVICE_UNAVAILABLE_REGION", "NO_YULA_MAIL", "WHATSAPP_NOT_AVAILABLE",
          "RENEW_ACTIVATION_NOT_AVAILABLE", "NEW_ACTIVATION_IMPOSSIBLE")
_register(AccountRestrictedError, "ACCOUNT_INACTIVE")
_register(BannedError, "BANNED")
_register(ChannelsLimitError, "CHANNELS_LIMIT")
_register(BadRequestError, "BAD_ACTION", "NO_ACTION", "WRONG ACTION", "BAD_SERVICE", "WRONG_SERVICE", "BAD_STATUS",
          "BAD_DATA", "BAD_COUNTRY", "WRONG_COUNTRY_ID", "BAD_OPERATOR", "WRONG_OPERATOR", "WRONG_DATE",
          "WRONG_EXCEPTION_PHONE", "WRONG_ADDITIONAL_SERVICE", "REPEAT_ADDITIONAL_SERVICE", "INVALID_TIME",
          "MAX_HOURS_EXCEED", "INCORECT_STATUS", "INCORRECT_STATUS", "INVALID_STATUS", "BAD_CURRENCY",
          "CURRENCY_CHANGE_UNAVAILABLE", "UNPROCESSABLE_ENTITY", "BAD_VALUES", "BAD_MULTIPLE", "BAD_MAX_PRICE",
          "BAD_PROVIDER_IDS", "BAD_EXCEPT_PROVIDER_IDS", "BAD_ACTIVATION_TYPE", "BAD_FIXED_PRICE",
          "OPERATORS_NOT_FOUND", "PARSE_COUNT_EXCEED", "CALL_TASK_ALREADY_EXIST", "NUMBER_NOT_EXIST",
          "BAD_DURATION", "MAX_PRICE_EXCEEDED")
_register(WrongMaxPriceError, "WRONG_MAX_PRICE")
_register(ActivationStateError, "OTP_RECEIVED", "NEW_OTP_RECEIVED", "FREE_CANCELLATION_EXPIRED",
          "ACTIVATION_NOT_ACTIVE", "NO_CALL", "NOT_INCOMING", "TOO_EARLY")
_register(ActivationNotFoundError, "NO_ACTIVATION", "NOT_FOUND", "WRONG_ACTIVATION_ID", "INVALID_ACTIVATION_ID",
          "INVALID_PHONE", "RENT_DIE")
_register(RentNotFoundError, "NO_ID_RENT")
_register(ActivationCancelledError, "STATUS_CANCEL")
_register(EarlyCancelDeniedError, "EARLY_CANCEL_DENIED")
_register(RentStateError, "STATUS_FINISH", "STATUS_REVOKE", "CANT_CANCEL", "ALREADY_FINISH", "ALREADY_CANCEL")
_register(OrderAlreadyExistsError, "ORDER_ALREADY_EXISTS")
_register(RateLimitedError, "RATE_LIMIT", "TOO_MANY_REQUESTS")
_register(ServerError, "ERROR_SQL", "SQL_ERROR", "SERVER_ERROR", "NO_CONNECTION")

#: Every wire code the library recognises as an error.
KNOWN_ERROR_CODES: frozenset[str] = frozenset(_CODE_CLASSES)


def _as_decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _parse_ban_until(payload: str | None, info: Mapping[str, Any]) -> _dt.datetime | None:
    readable = info.get("readable_date")
    if isinstance(readable, str):
        try:
            parsed = _dt.datetime.fromisoformat(readable.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)
    until = _as_int(info.get("banned_until"))
    if until is not None:
        return _dt.datetime.fromtimestamp(until, tz=_dt.UTC)
    if payload:
        # The classic form is BANNED:'YYYY-m-d H-i-s': dashes in the time part, zone not stated.
        # sms-activate ran on Moscow time; the zone is an assumption and is kept as UTC+3.
        text = payload.strip().strip("'\"").strip()
        for fmt in ("%Y-%m-%d %H-%M-%S", "%Y-%m-%d %H:%M:%S"):
            try:
                naive = _dt.datetime.strptime(text, fmt)
            except ValueError:
                continue
            return naive.replace(tzinfo=_dt.timezone(_dt.timedelta(hours=3)))
    return None


def error_for_code(
    code: str,
    *,
    payload: str | None = None,
    details: str | None = None,
    info: Mapping[str, Any] | None = None,
    action: str | None = None,
    status_code: int | None = None,
    retry_after: float | None = None,
) -> APIError:
    """Build the typed error for a wire code. Unknown codes give a plain :class:`APIError`.

    ``payload`` is the text after ``CODE:`` in a text answer (``WRONG_MAX_PRICE:0.5``).
    """
    info = dict(info or {})
    cls = _CODE_CLASSES.get(code, APIError)
    message = details or (f"{code}:{payload}" if payload else code)
    common: dict[str, Any] = {
        "code": code,
        "action": action,
        "details": details,
        "info": info,
        "status_code": status_code,
        "retry_after": retry_after,
    }
    if cls is BannedError:
        seconds = _as_decimal(info.get("retry_after_seconds"))
        if retry_after is None and seconds is not None:
            common["retry_after"] = float(seconds)
        return BannedError(message, until=_parse_ban_until(payload, info), **common)
    if cls is WrongMaxPriceError:
        return WrongMaxPriceError(message, min_price=_as_decimal(info.get("min", payload)), **common)
    if cls is ChannelsLimitError:
        return ChannelsLimitError(
            message, current=_as_int(info.get("current_threads")), max_allowed=_as_int(info.get("max_allowed")), **common
        )
    if cls is EarlyCancelDeniedError and retry_after is None:
        common["retry_after"] = _as_int(info.get("minActivationTime"))
    if code == "CANT_CANCEL" and not details:
        # [DOC 000 setRentStatus] a rent is cancelled (refunded) only within its first 20 minutes
        message = ("CANT_CANCEL: the rent can no longer be cancelled — the provider refunds a rent only within its "
                   "first 20 minutes (after that, finish it: set_rent_status(rent_id, 1))")
    elif code == "NO_ID_RENT" and not details:
        message = "NO_ID_RENT: no such rent on this account (a wrong rent id, or one bought with another key)"
    return cls(message, **common)
