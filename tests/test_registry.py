"""The registry, the generated coroutines and API.md agree."""

from __future__ import annotations

import inspect
import pathlib

from smsactivate_async import SMSActivate, _codegen
from smsactivate_async._actions import ACTIONS

API_NAMES = """get_numbers_status, get_top_countries_by_service, get_balance, get_balance_and_cashback,
  get_operators, get_active_activations, get_number, get_number_v2, get_multi_service_number,
  set_status, get_status, get_status_v2, get_history, get_list_of_top_countries_by_service,
  get_incoming_call_status, get_prices, get_prices_verification, get_countries, get_services_list,
  get_additional_service, get_extra_activation, check_extra_activation, parse_call,
  create_task_for_call, get_outgoing_calls, get_qiwi_requisites, get_full_sms,
  get_rent_services_and_countries, get_rent_number, get_rent_status, set_rent_status, get_rent_list,
  continue_rent_number, get_continue_rent_price_number, buy_partner_product"""


def test_generated_file_is_current() -> None:
    generated = pathlib.Path(_codegen.__file__).with_name("_generated.py").read_text(encoding="utf-8")
    assert generated == _codegen.render(), "run `python -m smsactivate_async._codegen`"


#: In the 2025 vendor page (FACTS §10, §14) but not in API.md's list: added so that "every action" holds.
BEYOND_API_MD = ["continue_rent_info", "get_prices_extended"]


def test_all_actions_declared_and_public() -> None:
    names = [n.strip() for n in API_NAMES.replace("\n", " ").split(",")]
    assert len(names) == 35
    classic = [a.name for a in ACTIONS.values() if not a.extra]
    assert sorted(classic) == sorted(names + BEYOND_API_MD)
    for name in names + BEYOND_API_MD:
        assert inspect.iscoroutinefunction(getattr(SMSActivate, name))


def test_signatures_follow_the_registry() -> None:
    for action in ACTIONS.values():
        signature = inspect.signature(getattr(SMSActivate, action.name))
        params = [p for p in signature.parameters.values() if p.name not in ("self", "unknown")]
        assert [p.name for p in params] == [p.name for p in action.params]
        for declared, actual in zip(action.params, params, strict=True):
            expected_kind = inspect.Parameter.POSITIONAL_ONLY if declared.positional else inspect.Parameter.KEYWORD_ONLY
            assert actual.kind is expected_kind
            assert (actual.default is inspect.Parameter.empty) == declared.required
        assert getattr(SMSActivate, action.name).__doc__.startswith(action.doc)


def test_every_public_action_reads_fractions_as_decimal() -> None:
    """Money is Decimal: only the scheduler's own scan (which reads no money) spares the conversion."""
    from smsactivate_async._scan import SCAN_ACTIVE, SWEEP_ACTIVE
    from smsactivate_async._wire import decode_answer

    assert all(action.decimals for action in ACTIONS.values())
    assert not SCAN_ACTIVE.decimals and not SWEEP_ACTIVE.decimals
    body = b'{"status": "success", "data": [{"activationId": "1", "activationCost": 0.1}]}'
    assert decode_answer(action="getActiveActivations", status_code=200, body=body, headers={},
                         decimals=False)["data"][0]["activationCost"] == 0.1
    assert str(decode_answer(action="getActiveActivations", status_code=200, body=body, headers={})
               ["data"][0]["activationCost"]) == "0.1"
