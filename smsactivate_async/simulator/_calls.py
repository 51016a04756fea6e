"""Calls and extras: additional services, extra activations, call parsing and tasks, outgoing and incoming calls, Qiwi.

Each handler is a small function registered for its wire action; it reads and changes the
simulator's state and answers through the dialect's renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from ._common import (
    _Reply,
    _wall,
)
from ._core import Account, ActivationState
from ._handlers import handles

if TYPE_CHECKING:
    from ._handlers import Server

__all__: list[str] = []


@handles("getAdditionalService")
def get_additional_service(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    parent = sim._activation(account, params)
    if not parent.forward:
        raise sim.render.fail("WRONG_ACTIVATION_ID")
    service = params.get("service")
    if not service or (service, parent.country) not in sim.catalogue:
        raise sim.render.fail("WRONG_ADDITIONAL_SERVICE")
    if any(a.parent == parent.id and a.service == service for a in sim.activations.values()):
        raise sim.render.fail("REPEAT_ADDITIONAL_SERVICE")
    entry = sim._check_purchase(account, {**params, "country": str(parent.country)}, service, v2=False)
    child = sim._buy(account, entry, params, phone=parent.phone, parent=parent.id)
    return sim.render.text(f"ADDITIONAL:{child.id}:{child.phone}")


@handles("getExtraActivation")
def get_extra_activation(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    parent, entry = sim._extra_entry(account, params)
    if account.balance < entry.price:
        raise sim.render.fail("NO_BALANCE")
    child = sim._buy(account, attrs.evolve(entry, count=entry.count + 1), params, phone=parent.phone, parent=parent.id)
    return sim.render.text(f"ACCESS_NUMBER:{child.id}:{child.phone}")


@handles("checkExtraActivation")
def check_extra_activation(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    parent, entry = sim._extra_entry(account, params)
    return sim.render.json({"status": "success", "cost": entry.price, "service": parent.service,
                            "phone": int(parent.phone), "country": parent.country})


@handles("parseCall")
def parse_call(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params)
    if not activation.state.active:
        raise sim.render.fail("STATUS_CANCEL")
    if not any(m.via == "call" for m in activation.messages):
        raise sim.render.fail("NO_CALL")
    if activation.parse_count >= 4:
        raise sim.render.fail("PARSE_COUNT_EXCEED")  # [DOC] at most 4
    activation.parse_count += 1
    return sim.render.json({"result": "OK"})


@handles("createTaskForCall")
def create_task_for_call(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    activation = sim._activation(account, params, "activationId")
    if not params.get("phone"):
        raise sim.render.fail("NUMBER_NOT_EXIST", json_key="msg")
    if activation.call_task:
        raise sim.render.fail("CALL_TASK_ALREADY_EXIST", json_key="msg")
    activation.call_task = True
    return sim.render.json({"status": "success", "msg": "The task is queued"})


@handles("getOutgoingCalls")
def get_outgoing_calls(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    # [FACTS §12, LCOZ] the parameter is `activationId`; `id=` is an unknown parameter, ignored like any
    # other (FACTS §1), so it filters nothing
    wanted = params.get("activationId", "")
    rows = {str(a.id): {"date": _wall(a.bought_wall), "phoneFrom": a.phone, "status": "wait"}
            for a in sim.activations.values() if a.key == account.key and a.call_task
            and (not wanted.isdigit() or a.id == int(wanted))}
    return sim.render.json(rows)


@handles("getIncomingCallStatus")
def get_incoming_call_status(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    raw = params.get("activationId") or params.get("id") or ""
    activation = sim.activations.get(int(raw)) if raw.isdigit() else None
    if activation is None:
        raise sim.render.fail("INVALID_ACTIVATION_ID", status=404, details="Activation Not Found")
    status = {ActivationState.FINISHED: "3", ActivationState.CANCELLED: "4", ActivationState.REFUNDED: "5"}
    call = next((m for m in activation.messages if m.via == "call"), None)
    return sim.render.json({"status": status.get(activation.state, "2"), "phone": call.phone_from if call else False})


@handles("getQiwiRequisites")
def get_qiwi_requisites(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    return sim.render.json({"status": "FALSE", "wallet": "79000000000", "comment": "sa12345", "upToDate": "2021-06-01"})
