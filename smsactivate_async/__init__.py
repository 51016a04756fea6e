"""Async client for the SMS-Activate protocol (HeroSMS, Grizzly, SMSBower, Tiger, SMSHub…)."""

from ._activation import ActivationHandle, HandleState
from ._buying import BuyingPolicy, Choice, RunMany, RunResult, SpendingGuard
from ._client import Activation, SMSActivate
from ._clock import Clock, SystemClock
from ._doctor import DoctorFinding, DoctorObservation, DoctorReport
from ._exceptions import (
    AccountRestrictedError,
    ActivationCancelledError,
    ActivationNotFoundError,
    ActivationStateError,
    APIError,
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    BannedError,
    ChannelsLimitError,
    ClientClosedError,
    EarlyCancelDeniedError,
    InsufficientBalanceError,
    InvalidArgumentError,
    NoNumbersError,
    OrderAlreadyExistsError,
    PurchaseUncertainError,
    RateLimitedError,
    RedirectError,
    RentNotFoundError,
    RentStateError,
    ReplayMismatchError,
    ServerError,
    SMSActivateError,
    SpendingGuardError,
    StoreError,
    TransportError,
    TruncatedResponseError,
    WaitTimeoutError,
    WebhookPayloadError,
    WrongMaxPriceError,
)
from ._journal import RecoveryReport
from ._models import *  # noqa: F403
from ._models import __all__ as _models_all
from ._outcome import NumberOutcome
from ._policy import RetryPolicy
from ._pool import ProviderPool
from ._providers import PROVIDERS, Provider
from ._record import RecordingTransport, ReplayTransport, load_recording
from ._session import RequestEvent, SessionStats
from ._store import Entry, Intent, MemoryStore, Store

__version__ = "0.1.0"

__all__ = [
    "PROVIDERS",
    "APIError",
    "Activation",
    "ActivationHandle",
    "BuyingPolicy",
    "Choice",
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
    "Clock",
    "DoctorFinding",
    "DoctorObservation",
    "DoctorReport",
    "EarlyCancelDeniedError",
    "Entry",
    "HandleState",
    "InsufficientBalanceError",
    "Intent",
    "InvalidArgumentError",
    "MemoryStore",
    "NoNumbersError",
    "NumberOutcome",
    "OrderAlreadyExistsError",
    "Provider",
    "ProviderPool",
    "PurchaseUncertainError",
    "RateLimitedError",
    "RecordingTransport",
    "RecoveryReport",
    "ReplayTransport",
    "RedirectError",
    "ReplayMismatchError",
    "RentNotFoundError",
    "RentStateError",
    "RequestEvent",
    "RunMany",
    "RunResult",
    "RetryPolicy",
    "SMSActivate",
    "SMSActivateError",
    "ServerError",
    "SessionStats",
    "SpendingGuard",
    "SpendingGuardError",
    "Store",
    "StoreError",
    "SystemClock",
    "TransportError",
    "TruncatedResponseError",
    "WaitTimeoutError",
    "WebhookPayloadError",
    "WrongMaxPriceError",
    "__version__",
    "load_recording",
    *_models_all,
]
