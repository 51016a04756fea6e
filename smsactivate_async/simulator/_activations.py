"""Activations: purchases, status changes, status reads, the active list, history, HeroSMS's extras.

Each handler is a small function registered for its wire action; it reads and changes the
simulator's state and answers through the dialect's renderer.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._common import (
    _CALLING_CODE,
    _Reply,
    _wall,
)
from ._core import Account, ActivationState
from ._handlers import handles

if TYPE_CHECKING:
    from ._handlers import Server

__all__: list[str] = []


@handles("getNumber")
def get_number(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    entry = sim._check_purchase(account, params, params.get("service"), v2=False)
    activation = sim._buy(account, entry, params)
    return sim.render.text(f"ACCESS_NUMBER:{activation.id}:{activation.phone}")


@handles("getNumberV2")
def get_number_v2(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    order_id = params.get("orderId") or None
    idempotent = sim.profile.order_id_idempotent  # [DOC HeroSMS] no idempotency: orderId is ignored there
    if order_id and idempotent and (account.key, order_id) in sim.orders:
        raise sim.render.fail("ORDER_ALREADY_EXISTS")  # [DOC] the same order is not processed again
    entry = sim._check_purchase(account, params, params.get("service"), v2=True)
    activation = sim._buy(account, entry, params, order_id=order_id if idempotent else None)
    if order_id and idempotent:
        sim.orders[(account.key, order_id)] = activation.id
    end = activation.bought_wall + _dt.timedelta(seconds=sim.lifetime_seconds)
    if sim.profile.number_v2_shape == "herosms":
        # [LIVE 2026-04-26] id as string, countryCode int, canGetAnotherSms bool, end time shown.
        spec = sim.herosms_number_v2 == "spec"
        # The sources disagree (FACTS §4): live "Y-m-d H:i:s" times, the current spec's RFC 3339 times
        # with verificationType and status. The live capture is the default; "spec" is the option.
        when = (lambda at: at.isoformat(timespec="seconds")) if spec else _wall
        answer_v2: dict[str, Any] = {
            "activationId": str(activation.id), "phoneNumber": activation.phone, "activationCost": activation.cost,
            "currency": sim.profile.currency, "countryCode": activation.country,
            "countryPhoneCode": _CALLING_CODE.get(activation.country, 7),
            "canGetAnotherSms": True, "activationTime": when(activation.bought_wall),
            "activationEndTime": when(end), "activationOperator": activation.operator,
            "serviceCode": activation.service, "subtype": 1}
        if spec:
            answer_v2.update(verificationType="sms", status=4)  # [HERO-CN]
        return sim.render.json(answer_v2)
    # [DOC] id and cost numbers, countryCode and canGetAnotherSms strings.
    answer: dict[str, Any] = {
        "activationId": activation.id, "phoneNumber": activation.phone, "activationCost": activation.cost,
        "currency": sim.profile.currency, "countryCode": str(activation.country), "canGetAnotherSms": "1",
        "activationTime": _wall(activation.bought_wall), "activationOperator": activation.operator}
    if sim.profile.number_v2_end_and_cancel:  # [GRIZ-TEST]
        answer["activationEnd"] = _wall(end)
        answer["activationCancel"] = _wall(activation.bought_wall + _dt.timedelta(seconds=sim.early_cancel_seconds))
    return sim.render.json(answer)


@handles("getMultiServiceNumber")
def get_multi_service_number(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    services = [s for s in params.get("multiService", "").split(",") if s]
    if not services:
        raise sim.render.fail("BAD_SERVICE", status=400, details="Wrong service")
    if sim._country(params) != 0:
        # [FACTS §11, SA-JAVA] NOT_AVAILABLE: the country does not support multi-service (getCountries
        # advertises it with "multiService": 1, here country 0 only)
        raise sim.render.fail("NOT_AVAILABLE", status=400, details="Multi-service is not available in this country")
    entries = [sim._check_purchase(account, params, s, v2=False) for s in services]
    if sum(e.price for e in entries) > account.balance:
        raise sim.render.fail("NO_BALANCE", status=402, details="Payment Required")
    first = sim._buy(account, entries[0], params)
    rows = [first] + [sim._buy(account, e, params, phone=first.phone) for e in entries[1:]]
    return sim.render.json([{"phone": a.phone, "activation": a.id, "service": a.service} for a in rows])


@handles("setStatus")
def set_status(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    status = params.get("status", "")
    if status == "-1" and sim.profile.legacy_cancel:
        status = "8"  # [GRIZ-DOC; RUSTX-TIGER] the old docs' cancel still works there
    state = activation.state
    if status not in ("1", "3", "6", "8") or (status == "1" and not sim.profile.accepts_ready):
        # [DOC current HeroSMS spec: 3, 6, 8; unverified live] see herosms_accepts_ready
        raise sim.render.fail("BAD_STATUS", status=400, details="Wrong status code")
    if not state.active:
        # [DOC HeroSMS, FACTS §7/§17] the 409 for a dead activation is titled ACTIVATION_NOT_ACTIVE
        raise sim.render.fail("BAD_STATUS", status=409, title="ACTIVATION_NOT_ACTIVE",
                              details="Activation is terminated/refunded")
    if status == "1":
        if state is not ActivationState.WAIT_CODE:
            raise sim.render.fail("BAD_STATUS")
        activation.ready = True
        return sim.render.text("ACCESS_READY")
    if status == "3":
        if state is not ActivationState.CODE_RECEIVED:
            # [FACTS §17] HeroSMS knows BAD_STATUS only as 400 "Wrong status code"
            raise sim.render.fail("BAD_STATUS", status=400, details="Wrong status code")
        sim._change(activation, ActivationState.WAIT_RETRY, "setStatus 3")
        sim._schedule_code(activation)
        return sim.render.text("ACCESS_RETRY_GET")
    if status == "6":
        if state is ActivationState.WAIT_CODE:
            if not sim.profile.finish_before_code_refunds:
                # HeroSMS refuses it [HERO-CN]; the body is the API's one documented BAD_STATUS, a 400
                # "Wrong status code" (FACTS §17) -- "Activation cannot be completed, no code." is its
                # website's wording (frontend i18n), which no API answer is shown to carry.
                raise sim.render.fail("BAD_STATUS", status=400, details="Wrong status code")
            # [DOC] 6 while "preparing" deletes and marks an error: a cancel with refund [INFER]. Not a
            # cancel by 8, so the first two minutes' EARLY_CANCEL_DENIED (a rule of cancelling) is not
            # asked here (FACTS §7 names the two cases apart).
            sim._refund(activation, ActivationState.CANCELLED, "setStatus 6 before a code")
            return sim.render.text("ACCESS_ACTIVATION")
        sim._change(activation, ActivationState.FINISHED, "setStatus 6")
        return sim.render.text("ACCESS_ACTIVATION")
    # status 8
    if activation.messages:
        # [DOC] after a code only 3 or 6; HeroSMS 409 OTP_RECEIVED.
        raise sim.render.fail("BAD_STATUS", status=409, title="OTP_RECEIVED", details="Otp was received on this number.")
    sim._early_cancel_check(activation)
    sim._refund(activation, ActivationState.CANCELLED, "setStatus 8")
    return sim.render.text("ACCESS_CANCEL")


@handles("getStatus")
def get_status(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    state = activation.state
    if state is ActivationState.WAIT_CODE:
        return sim.render.text("STATUS_WAIT_CODE")
    if state is ActivationState.CODE_RECEIVED:
        return sim.render.text(f"STATUS_OK:{activation.last_code}")
    if state is ActivationState.WAIT_RETRY:
        return sim.render.text(f"STATUS_WAIT_RETRY:{activation.last_code}")
    return sim.render.text(sim.profile.cancelled_token)  # [DOC] "canceled or completed"


@handles("getStatusV2")
def get_status_v2(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    if not activation.state.active:
        return sim.render.text("STATUS_CANCEL")  # [DOC] bare token, not JSON
    sms = next((m for m in reversed(activation.messages) if m.via == "sms"), None)
    call = next((m for m in reversed(activation.messages) if m.via == "call"), None)
    # [LIVE HeroSMS] after setStatus 3 the old SMS stays until a new one arrives.
    if sim.status_v2_shape == "spec" and sim.profile.number_v2_shape == "herosms":
        latest = activation.messages[-1] if activation.messages else None
        data = None if latest is None else {
            "id": str(activation.id), "phoneFrom": latest.phone_from, "code": latest.code, "text": latest.text,
            "service": activation.service, "date": latest.at.isoformat(), "type": latest.via}
        return sim.render.json({"verificationType": "call" if activation.via == "call" else "sms", "data": data})
    return sim.render.json({
        "verificationType": 2 if activation.via == "call" else 0,
        "sms": None if sms is None else {"dateTime": _wall(sms.at), "code": sms.code, "text": sms.text},
        "call": None if call is None else {"from": call.phone_from, "text": call.text, "code": call.code,
                                           "dateTime": _wall(call.at), "url": None,
                                           "parsingCount": activation.parse_count},
    })


@handles("getActiveActivations")
def get_active_activations(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    now = sim.clock.now()
    active = [a for a in sim.activations.values() if a.key == account.key and a.state.active and a.listed_from <= now]
    if sim.profile.active_list == "paged":
        start = int(params["start"]) if params.get("start", "").isdigit() else 0
        limit = min(100, int(params["limit"])) if params.get("limit", "").isdigit() else 50
        page = active[start:start + limit]
        if not active:
            # [HERO-OAS1 activationsNotFoundExample, FACTS §8] nothing active: the error, not an empty page
            return sim.render.json({"status": "error", "error": "NO_ACTIVATIONS"})
        # [HERO-LIVE, FACTS §8] rows in "data"; "activeActivations" is a leaked DB cursor whose
        # "row" is an object (REAL_RESPONSES §C's `"row":[]` is a hand-built TEST string).
        return sim.render.json({"status": "success", "data": [sim._active_row(a) for a in page],
                                "activeActivations": {"affected_rows": 0, "num_rows": 0, "row": {}, "rows": []}})
    if not active:
        raise sim.render.fail("NO_ACTIVATIONS", json_key="error")  # [DOC/TEST] not an empty list
    return sim.render.json({"status": "success", "activeActivations": [sim._active_row(a) for a in active]})


@handles("getHistory")
def get_history(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    start, end = params.get("start"), params.get("end")
    if (start is not None and not start.isdigit()) or (end is not None and not end.isdigit()):
        raise sim.render.fail("WRONG_DATE", status=400, details="Wrong date")
    if start and end and int(end) - int(start) > 30 * 86400:
        raise sim.render.fail("WRONG_DATE", status=400, details="Wrong date")
    # [HERO-LIVE, FACTS §9] HeroSMS pages history by `size`; `limit` is the classic name
    size = params.get(sim.profile.history_page_param, "")
    limit = min(100, int(size)) if size.isdigit() else 50
    offset = int(params["offset"]) if params.get("offset", "").isdigit() else 0
    rows = []
    for a in sorted(sim.activations.values(), key=lambda a: a.id, reverse=True):
        if a.key != account.key:
            continue
        stamp = a.bought_wall.timestamp()
        if (start and stamp < int(start)) or (end and stamp > int(end)):
            continue
        closed_paid = a.state is ActivationState.FINISHED
        rows.append({"id": str(a.id) if sim.profile.history_ids_as_strings else a.id, "date": _wall(a.bought_wall),
                     "phone": a.phone, "sms": a.messages[-1].text if a.messages else None,
                     "cost": a.cost if closed_paid else 0, "status": sim._history_status(a), "currency": sim.profile.currency})
    return sim.render.json(rows[offset:offset + limit])  # [LIVE] a bare array


@handles("finishActivation")
def finish_activation(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    if not activation.state.active:
        raise sim.render.fail("ACTIVATION_NOT_ACTIVE", status=409, details="Activation is terminated/refunded")
    if not activation.messages:
        raise sim.render.fail("BAD_STATUS", status=400, details="Wrong status code")  # as setStatus 6 above
    sim._change(activation, ActivationState.FINISHED, "finishActivation")
    return _Reply(204, b"", "text/plain")  # [LIVE] 204, empty body


@handles("cancelActivation")
def cancel_activation(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    if not activation.state.active:
        raise sim.render.fail("ACTIVATION_NOT_ACTIVE", status=409, details="Activation is terminated/refunded")
    if activation.messages:
        raise sim.render.fail("OTP_RECEIVED", status=409, details="Otp was received on this number.")
    sim._early_cancel_check(activation)
    sim._refund(activation, ActivationState.CANCELLED, "cancelActivation")
    return _Reply(204, b"", "text/plain")


@handles("getAllSms")
def get_all_sms(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    rows = [{"id": str(activation.id * 10 + i), "phoneFrom": m.phone_from, "code": m.code, "text": m.text,
             "service": activation.service, "date": m.at.isoformat(), "type": m.via}
            for i, m in enumerate(activation.messages)]
    return sim.render.json({"data": rows, "meta": {"total": len(rows), "service": activation.service}})


@handles("getFullSms")
def get_full_sms(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    if not activation.state.active and not activation.messages:
        return sim.render.text("STATUS_CANCEL")
    if not activation.messages:
        return sim.render.text("STATUS_WAIT_CODE")
    return sim.render.text(f"FULL_SMS:{activation.messages[-1].text}")
