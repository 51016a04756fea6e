"""Typed results. Attribute names are the snake_case of the wire keys; money is ``Decimal``."""

from __future__ import annotations

import datetime as _dt
import enum
from decimal import Decimal

import attrs

__all__ = [
    "ActivationStatus",
    "ActiveActivation",
    "CallInfo",
    "CallTaskResult",
    "Country",
    "ExtraActivationInfo",
    "FullSms",
    "HistoryEntry",
    "IncomingCallState",
    "IncomingCallStatus",
    "MultiServiceActivation",
    "Number",
    "NumbersStatus",
    "OutgoingCall",
    "PartnerProduct",
    "Price",
    "PriceVerification",
    "QiwiRequisites",
    "Rent",
    "RentListEntry",
    "RentExtension",
    "RentExtensionInfo",
    "RentPrice",
    "RentServicePrice",
    "RentServicesAndCountries",
    "RentSms",
    "RentStatus",
    "Service",
    "SetStatusAnswer",
    "SmsInfo",
    "SmsMessage",
    "Status",
    "StatusCode",
    "StatusV2",
    "TopCountry",
    "TopCountryShare",
]


def _positive_id(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    # An activation or rent id is a positive integer; anything else is not the answer it claims to be.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


_positive_id.passes = "type({0}) is int and {0} > 0"  # type: ignore[attr-defined]  # inline, in _convert's row builders


class Status(enum.IntEnum):
    """The values ``set_status`` accepts."""

    READY = 1  #: "SMS sent" (optional; HeroSMS refuses it)
    REQUEST_ANOTHER_CODE = 3
    FINISH = 6
    CANCEL = 8


class SetStatusAnswer(enum.Enum):
    """``set_status`` answers; ``.value`` is the wire word."""

    ACCESS_READY = "ACCESS_READY"
    ACCESS_RETRY_GET = "ACCESS_RETRY_GET"
    ACCESS_ACTIVATION = "ACCESS_ACTIVATION"
    ACCESS_CANCEL = "ACCESS_CANCEL"


class StatusCode(enum.Enum):
    """``get_status`` states; ``.value`` is the wire word. ``UNKNOWN`` keeps unfamiliar ``STATUS_*``."""

    STATUS_WAIT_CODE = "STATUS_WAIT_CODE"
    STATUS_WAIT_RETRY = "STATUS_WAIT_RETRY"
    STATUS_WAIT_RESEND = "STATUS_WAIT_RESEND"
    STATUS_CANCEL = "STATUS_CANCEL"
    STATUS_OK = "STATUS_OK"
    UNKNOWN = "UNKNOWN"


class IncomingCallState(enum.IntEnum):
    """The state of an incoming call (``get_incoming_call_status``)."""

    NEW = 2
    FINISHED = 3
    CANCELLED = 4
    RETURNED = 5


@attrs.frozen
class ActivationStatus:
    """``get_status``: ``status`` and the ``code`` once one arrived.

    ``code`` is the code; ``text`` is the whole payload after ``STATUS_OK:`` (HeroSMS may send the
    full SMS there) and for ``STATUS_WAIT_RETRY`` the previous code. ``raw`` is the answer as sent.
    """

    status: StatusCode
    code: str | None = None
    text: str | None = None
    raw: str = ""


@attrs.frozen
class Number:
    """A bought number: ``get_number``, ``get_number_v2``, ``get_extra_activation``, ``get_additional_service``.

    Text answers fill only ``activation_id`` and ``phone_number``.
    """

    activation_id: int = attrs.field(validator=_positive_id)
    phone_number: str
    activation_cost: Decimal | None = None
    currency: int | None = None
    country_code: int | None = None
    country_phone_code: int | None = None
    can_get_another_sms: bool | None = None
    activation_time: _dt.datetime | None = None
    activation_end_time: _dt.datetime | None = None
    activation_operator: str | None = None
    service_code: str | None = None


@attrs.frozen
class MultiServiceActivation:
    """One service's activation of a ``get_multi_service_number`` purchase."""

    activation_id: int = attrs.field(validator=_positive_id)
    phone_number: str
    service: str


@attrs.frozen
class ActiveActivation:
    """One row of ``get_active_activations``."""

    activation_id: int = attrs.field(validator=_positive_id)
    service_code: str | None = None
    phone_number: str | None = None
    activation_cost: Decimal | None = None
    activation_status: int | None = None
    sms_code: list[str] = attrs.field(factory=list)
    sms_text: str | None = None
    activation_time: _dt.datetime | None = None
    discount: Decimal | None = None
    repeated: bool | None = None
    country_code: int | None = None
    country_name: str | None = None
    can_get_another_sms: bool | None = None
    currency: int | None = None
    receive_sms_date: _dt.datetime | None = None


@attrs.frozen
class SmsInfo:
    """The SMS part of ``get_status_v2``."""

    date_time: _dt.datetime | None = None
    code: str | None = None
    text: str | None = None


@attrs.frozen
class CallInfo:
    """The call part of ``get_status_v2`` (voice codes)."""

    from_: str | None = None
    text: str | None = None
    code: str | None = None
    date_time: _dt.datetime | None = None
    url: str | None = None
    parsing_count: int | None = None


@attrs.frozen
class StatusV2:
    """``get_status_v2``, in either provider's shape, or a bare ``STATUS_*`` word.

    ``status`` sums it up: ``STATUS_OK`` with a code, ``STATUS_CANCEL``, or ``STATUS_WAIT_CODE``.
    """

    status: StatusCode
    verification_type: str | None = None
    sms: SmsInfo | None = None
    call: CallInfo | None = None

    @property
    def code(self) -> str | None:
        """The SMS code, or else the call code."""
        if self.sms is not None and self.sms.code:
            return self.sms.code
        if self.call is not None and self.call.code:
            return self.call.code
        return None


@attrs.frozen
class SmsMessage:
    """One message of HeroSMS ``getAllSms``."""

    id: str | None = None
    phone_from: str | None = None
    code: str | None = None
    text: str | None = None
    service: str | None = None
    date: _dt.datetime | None = None
    type: str | None = None


@attrs.frozen
class HistoryEntry:
    """One row of ``get_history``."""

    id: int = attrs.field(validator=_positive_id)
    date: _dt.datetime | None = None
    phone: str | None = None
    sms: list[str] = attrs.field(factory=list)
    cost: Decimal | None = None
    status: int | None = None
    currency: int | None = None


@attrs.frozen
class NumbersStatus:
    """``get_numbers_status``: counts per service code; ``forward_counts`` for ``_1`` keys."""

    counts: dict[str, int]
    forward_counts: dict[str, int] = attrs.field(factory=dict)

    def __getitem__(self, service: str) -> int:
        return self.counts[service]


@attrs.frozen
class TopCountry:
    """One row of ``get_top_countries_by_service`` (with the Free Price levels when asked)."""

    country: int
    count: int | None = None
    price: Decimal | None = None
    retail_price: Decimal | None = None
    free_price_map: dict[Decimal, int] | None = None
    service: str | None = None


@attrs.frozen
class TopCountryShare:
    """One row of ``get_list_of_top_countries_by_service``."""

    country: int
    share: Decimal | None = None
    rate: Decimal | None = None


@attrs.frozen
class IncomingCallStatus:
    """``get_incoming_call_status``: the call's state and the calling number."""

    status: IncomingCallState | int
    phone: str | None = None


@attrs.frozen
class Price:
    """``get_prices`` and ``get_prices_extended``; ``free_price_map`` (price → count) only with ``free_price``."""

    cost: Decimal
    count: int | None = None
    physical_count: int | None = None
    free_price_map: dict[Decimal, int] | None = None


@attrs.frozen
class PriceVerification:
    """One price of ``get_prices_verification``."""

    price: Decimal
    count: int | None = None


@attrs.frozen
class Country:
    """One country of ``get_countries`` (names, and what it offers)."""

    id: int
    rus: str | None = None
    eng: str | None = None
    chn: str | None = None
    visible: bool | None = None
    retry: bool | None = None
    rent: bool | None = None
    multi_service: bool | None = None


@attrs.frozen
class Service:
    """One service of ``get_services_list``."""

    code: str
    name: str | None = None


@attrs.frozen
class ExtraActivationInfo:
    """``check_extra_activation``: whether and at what price a number can be reused."""

    cost: Decimal | None = None
    service: str | None = None
    phone: str | None = None
    country: int | None = None


@attrs.frozen
class CallTaskResult:
    """``create_task_for_call``: the task made for a call-verification number."""

    message: str | None = None


@attrs.frozen
class OutgoingCall:
    """One call of ``get_outgoing_calls``."""

    task_id: str
    date: _dt.datetime | None = None
    phone_from: str | None = None
    status: str | None = None


@attrs.frozen
class QiwiRequisites:
    """``get_qiwi_requisites``: payment details for a top-up."""

    status: str | None = None
    wallet: str | None = None
    comment: str | None = None
    up_to_date: str | None = None


@attrs.frozen
class FullSms:
    """``get_full_sms``: ``text`` once an SMS arrived (``status`` ``STATUS_OK``)."""

    status: StatusCode
    text: str | None = None


@attrs.frozen
class RentServicePrice:
    """One service's rent price in ``get_rent_services_and_countries``."""

    cost: Decimal
    quant: int | None = None


@attrs.frozen
class RentServicesAndCountries:
    """``get_rent_services_and_countries``: what can be rented where, for how long."""

    countries: list[int]
    operators: list[str]
    services: dict[str, RentServicePrice]
    currency: int | None = None


@attrs.frozen
class Rent:
    """A rented number: ``get_rent_number``, ``continue_rent_number``."""

    id: int = attrs.field(validator=_positive_id)
    number: str
    end_date: _dt.datetime | None = None


@attrs.frozen
class RentSms:
    """One message received on a rented number (``get_rent_status``, ``wait_for_rent_sms``)."""

    text: str | None = None
    phone_from: str | None = None
    service: str | None = None
    date: _dt.datetime | None = None


@attrs.frozen
class RentStatus:
    """``get_rent_status``: ``values`` newest first; empty while no SMS came (``STATUS_WAIT_CODE``)."""

    quantity: int
    values: list[RentSms] = attrs.field(factory=list)


@attrs.frozen
class RentListEntry:
    """One rent of ``get_rent_list``."""

    id: int = attrs.field(validator=_positive_id)
    phone: str | None = None


@attrs.frozen
class RentPrice:
    """``get_continue_rent_price_number``: what extending a rent costs."""

    price: Decimal
    currency: int | None = None


@attrs.frozen
class RentExtension:
    """One past extension of a rent (``continue_rent_info(..., need_history=True)``)."""

    create_date: _dt.datetime | None = None
    price: Decimal | None = None
    hours: int | None = None


@attrs.frozen
class RentExtensionInfo:
    """``continue_rent_info``: what extending a rent by ``hours`` costs; ``history`` when asked for."""

    price: Decimal
    currency: int | None = None
    hours: int | None = None
    history: list[RentExtension] = attrs.field(factory=list)


@attrs.frozen
class PartnerProduct:
    """``buy_partner_product``: the product bought."""

    key: str | None = None
    manual: str | None = None
