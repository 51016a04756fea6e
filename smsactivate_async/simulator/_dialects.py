"""Dialects as declared data: what a provider does differently, and the renderer that turns a
handler's answer or error into that provider's HTTP.

A provider's quirk is a field of its :class:`DialectProfile`, with its source, never an ``if`` on
the provider's name inside a handler. The handlers build documents and name errors; the
:class:`Renderer` chooses status codes, envelopes and content types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._common import _Error, _json_default, _Reply
from ._core import ProfileName

__all__ = ["CLASSIC", "GRIZZLY", "HEROSMS", "PROFILES", "SMSBOWER", "SMSHUB", "TIGER", "DialectProfile", "Renderer"]

_HTML = "text/html; charset=UTF-8"


@attrs.frozen
class DialectProfile:
    """How one dialect differs from the classic protocol. Each field names its source."""

    name: ProfileName
    #: errors as ``{"title","details","info"}`` with real HTTP statuses (else 200 tokens / JSON)
    http_errors: bool = False
    #: Content-Type of JSON answers ([LIVE] classic: text/html, except the ``labelled`` actions)
    json_content_type: str = _HTML
    #: countries it does not sell ([LIVE getCountries dump, FACTS §10] HeroSMS: no 0, no 12)
    absent_countries: frozenset[int] = frozenset()
    #: purchases and getNumbersStatus need ``country`` (422 without) [HERO-TR, RUSTX-HERO]
    country_required: bool = False
    #: actions it answers with BAD_ACTION ([LIVE] HeroSMS dropped getFullSms)
    dropped_actions: frozenset[str] = frozenset()
    #: actions beyond the classic set [DOC HeroSMS]
    extra_actions: frozenset[str] = frozenset()
    #: getNumberV2's ``orderId`` is idempotent ([DOC] classic; HeroSMS ignores it)
    order_id_idempotent: bool = True
    #: the getNumberV2 answer's shape ([DOC] classic; [LIVE 2026-04-26] HeroSMS)
    number_v2_shape: Literal["classic", "herosms"] = "classic"
    #: a purchase's bad-service answer as 200 text ([RUSTX-HERO] HeroSMS; FACTS §4: every getNumber
    #: error applies to getNumberV2 too)
    bad_service_text: str | None = None
    #: getNumberV2's bad service as the envelope with this status instead ([RUSTX-TIGER] Tiger: 200)
    v2_bad_service_status: int | None = None
    #: setStatus 1 is accepted [FACTS §7: HeroSMS's current spec lists 3, 6, 8]
    accepts_ready: bool = True
    #: setStatus 6 before a code cancels with a refund ([DOC] classic, [INFER]) instead of a 409
    finish_before_code_refunds: bool = True
    #: getActiveActivations: one ``activeActivations`` list, or pages in ``data`` with a leaked cursor
    active_list: Literal["classic", "paged"] = "classic"
    #: the getHistory page-size parameter ([HERO-LIVE, FACTS §9] HeroSMS: ``size``)
    history_page_param: str = "limit"
    #: getHistory ids as strings [HERO-LIVE]
    history_ids_as_strings: bool = False
    #: the history status of an activation refunded at the end of its life ([DOC HeroSMS] "10")
    expired_history_status: str = "8"
    #: the envelope for an unknown activation id ([LIVE] HeroSMS: 404 NOT_FOUND, for any id)
    unknown_activation_not_found: bool = False
    #: OPERATORS_NOT_FOUND as 200 plain text ([LIVE summary, REAL_RESPONSES §B] HeroSMS)
    operators_not_found_text: bool = False
    #: a bad service/country filter on getPrices → ``{"status":"false","msg":…}`` ([DOC HeroSMS])
    filters_answer_status_false: bool = False
    #: getNumbersStatus counts as strings ([LIVE, SA-POSTMAN] classic; HeroSMS sends numbers)
    numbers_status_counts_as_strings: bool = True
    #: 429s carry ``Retry-After`` unless the faults say otherwise ([LIVE fixture] HeroSMS's did not)
    retry_after_header: bool = True
    #: webhook pushes add ``phoneFrom`` and an ISO ``receivedAt`` ([HERO-CN, HERO-TR] FACTS §16)
    webhook_iso_times: bool = False
    #: seconds between webhook tries: (low, high) ([DOC HeroSMS] 20-30 s; [DOC] classic: 8 in 2 h)
    webhook_retry_delay: tuple[float, float] = (900.0, 900.0)
    #: seconds after a purchase during which a cancel is refused ([DOC] 2 minutes)
    early_cancel_seconds: float = 120.0
    #: the getStatus token of a cancelled activation ([RUSTX-TIGER] Tiger: ACCESS_CANCEL)
    cancelled_token: str = "STATUS_CANCEL"
    #: BAD_KEY as plain text with HTTP 401, on every action ([RUSTX-TIGER] Tiger)
    bad_key_plain_401: bool = False
    #: an unknown activation id answers plain NO_ACTIVATION even where errors are enveloped ([RUSTX-TIGER])
    unknown_activation_plain: bool = False
    #: digits after the point in getBalance (``None``: as few as needed; [GRIZ-TEST] Grizzly: 8)
    balance_decimals: int | None = None
    #: getPrices costs as strings with this many decimals ([RUSTX-TIGER] Tiger: ``"0.2500"``)
    price_string_decimals: int | None = None
    #: getNumberV2 adds ``activationEnd`` and ``activationCancel`` ([GRIZ-TEST] Grizzly)
    number_v2_end_and_cancel: bool = False
    #: the currency of answers ([GRIZ-TEST] Grizzly: 643, RUB; elsewhere 840)
    currency: int = 840
    #: the wire name of the purchase's maximum price ([SMSHUB] SMSHub: ``max_price``)
    max_price_param: str = "maxPrice"
    #: the provider's own words for classic tokens ([SMSHUB] error table; which one it sends is [INFER])
    token_renames: Mapping[str, str] = attrs.field(factory=dict)
    #: getPrices carries one row keyed ``""`` with no country id ([RUSTX, REAL_RESPONSES §E] SMSBower)
    prices_blank_country_row: bool = False
    #: setStatus -1 (the old docs' cancel) still cancels ([GRIZ-DOC; RUSTX-TIGER] Grizzly, Tiger)
    legacy_cancel: bool = False


CLASSIC = DialectProfile(name="sms-activate")

HEROSMS = DialectProfile(
    name="herosms",
    http_errors=True,
    json_content_type="application/json",
    absent_countries=frozenset({0, 12}),
    country_required=True,
    dropped_actions=frozenset({"getFullSms"}),
    extra_actions=frozenset({"finishActivation", "cancelActivation", "getAllSms"}),
    order_id_idempotent=False,
    number_v2_shape="herosms",
    bad_service_text="UNPROCESSABLE_ENTITY:service:INVALID",
    accepts_ready=False,
    finish_before_code_refunds=False,
    active_list="paged",
    history_page_param="size",
    history_ids_as_strings=True,
    expired_history_status="10",
    unknown_activation_not_found=True,
    operators_not_found_text=True,
    filters_answer_status_false=True,
    retry_after_header=False,
    numbers_status_counts_as_strings=False,
    webhook_iso_times=True,
    webhook_retry_delay=(20.0, 30.0),
)

# Tiger SMS: the HeroSMS backend family ([FACTS §1] real statuses and the envelope), with its own
# differences from live captures [RUSTX-TIGER]; what the captures do not show is HeroSMS's [INFER].
TIGER = attrs.evolve(
    HEROSMS,
    name="tiger",
    absent_countries=frozenset(),  # [INFER] no capture of Tiger's country list
    country_required=False,  # [INFER]
    dropped_actions=frozenset(),  # [INFER]
    extra_actions=frozenset(),  # [RUSTX-TIGER] its V2 actions are setStatusV2 & co., not HeroSMS's
    cancelled_token="ACCESS_CANCEL",
    bad_key_plain_401=True,
    unknown_activation_plain=True,
    unknown_activation_not_found=False,
    price_string_decimals=4,
    retry_after_header=True,  # [RUSTX-TIGER] its edge 429 carries Retry-After
    legacy_cancel=True,
    v2_bad_service_status=200,  # [RUSTX-TIGER] the V2 probe: 200 {"title":"BAD_SERVICE",...}
)

# Grizzly SMS: the classic dialect [GRIZ-DOC] with a doc-looking fixture's differences [GRIZ-TEST].
GRIZZLY = DialectProfile(
    name="grizzly",
    order_id_idempotent=False,  # [INFER] no source says it takes orderId (as the client's preset)
    early_cancel_seconds=300.0,  # [GRIZ-TEST] activationCancel = purchase + 5 min
    balance_decimals=8,  # [GRIZ-TEST] ACCESS_BALANCE:123456789.01234567
    number_v2_end_and_cancel=True,
    currency=643,
    legacy_cancel=True,
)

# SMSHub: the classic dialect; its own parameter name and error words [SMSHUB].
SMSHUB = DialectProfile(
    name="smshub",
    order_id_idempotent=False,  # [INFER] as the client's preset
    max_price_param="max_price",
    token_renames={"BAD_KEY": "API_KEY_NOT_VALID", "BAD_ACTION": "NO_ACTION", "BAD_SERVICE": "WRONG_SERVICE",
                   "ERROR_SQL": "SERVER_ERROR"},
)

# SMSBower: the sources hold nothing beyond "classic" except one getPrices row keyed "" [RUSTX].
SMSBOWER = DialectProfile(name="smsbower", prices_blank_country_row=True,
                          order_id_idempotent=False)  # [INFER] as the client's preset

PROFILES: dict[str, DialectProfile] = {p.name: p for p in (CLASSIC, HEROSMS, TIGER, GRIZZLY, SMSHUB, SMSBOWER)}

#: the actions beyond the classic set, in any dialect (a profile adds its own)
ALL_EXTRA_ACTIONS = frozenset().union(*(p.extra_actions for p in PROFILES.values()))


class Renderer:
    """Turns documents, tokens and named errors into one dialect's HTTP answers."""

    def __init__(self, profile: DialectProfile) -> None:
        self.profile = profile

    def text(self, text: str, status: int = 200) -> _Reply:
        return _Reply(status, text.encode(), _HTML)

    def json(self, doc: Any, status: int = 200, *, labelled: bool = False) -> _Reply:
        """A JSON answer. ``labelled``: an action the classic servers label ``application/json``
        (getOperators, getTopCountriesByServiceRank [LIVE, REAL_RESPONSES §A])."""
        body = json.dumps(doc, ensure_ascii=False, default=_json_default).encode()
        return _Reply(status, body, "application/json" if labelled else self.profile.json_content_type)

    def envelope(self, title: str, status: int, details: str = "", info: Mapping[str, Any] | None = None) -> _Error:
        """The ``{"title","details","info"}`` envelope with its status, whatever the dialect."""
        doc: dict[str, Any] = {"title": title, "details": details}
        if info:
            doc["info"] = dict(info)
        return _Error(self.json(doc, status))

    def fail(
        self,
        code: str,
        *,
        status: int | None = None,
        title: str | None = None,
        details: str = "",
        info: Mapping[str, Any] | str | None = None,
        payload: str | None = None,
        json_key: str | None = None,
    ) -> _Error:
        """The error ``code`` in this dialect. Where errors are enveloped and ``status`` is given:
        ``{"title": title or code, …}`` with that status. Else the classic form: JSON
        ``{"status":"error", json_key: code}`` or a text token (``code:payload``)."""
        if code == "BAD_KEY" and self.profile.bad_key_plain_401:
            return _Error(self.text("BAD_KEY", 401))  # [RUSTX-TIGER] on every action
        if self.profile.http_errors and status is not None:
            return self.envelope(title or code, status, details, info if isinstance(info, Mapping) else None)
        code = self.profile.token_renames.get(code, code)
        if json_key is not None:
            doc: dict[str, Any] = {"status": "error", json_key: code}
            if info:
                doc["info"] = dict(info) if isinstance(info, Mapping) else info
            return _Error(self.json(doc))
        return _Error(self.text(f"{code}:{payload}" if payload is not None else code))

    def rate_limited(self, seconds: float, *, header: bool, page: bool = False) -> _Reply:
        """A 429 (or the edge's 1020 block page)."""
        if page:
            # [DOC HeroSMS rules: "error 1020"] the edge's block page
            return _Reply(403, b"<html><head><title>Access denied | error code: 1020</title></head><body>"
                          b"<h1>Error 1020</h1><p>Access denied</p><p>error code: 1020</p></body></html>", "text/html")
        if self.profile.http_errors:
            reply = self.json({"title": "RATE_LIMIT", "details": ""}, 429)  # [LIVE]
        else:
            reply = self.text("Too Many Requests", 429)  # [LIVE Tiger edge]; sms-activate never showed a 429
        if header:
            # HTTP says whole seconds; a fractional value is sent only when configured (fast tests).
            text = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
            reply.headers = [(b"retry-after", text.encode())]
        return reply
