"""Know your provider (issue 29): the doctor against the simulator serving each dialect (all green)
and against deliberately mismatched pairs (every declared difference named); recording that never
writes the key, phones or codes; a recorded run replayed as a test; a recording checked offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx
import pytest
from click.testing import CliRunner

from smsactivate_async import PROVIDERS, InvalidArgumentError, ReplayTransport, SMSActivate, load_recording
from smsactivate_async._doctor import FREE_ACTIONS, UNPROBED, check_recording
from smsactivate_async.simulator import CodeSchedule, Simulator, serve_in_thread
from smsactivate_async.simulator._dialects import PROFILES, DialectProfile

pytestmark = pytest.mark.anyio
DIALECTS = sorted(PROVIDERS)  # every preset: a new one is tested here without touching this file


@pytest.mark.parametrize("name", DIALECTS)
async def test_every_preset_is_all_green_against_its_own_dialect(name: str) -> None:
    sim = Simulator(provider=name)
    async with SMSActivate(sim.api_key, provider=name, transport=sim.transport()) as client:
        report = await client.doctor()
    assert report.ok, report.findings
    assert len(report.observations) == 11 and report.profile == name
    wrong = next(o for o in report.observations if o.probe == "wrong key")
    assert wrong.code in ("BAD_KEY", "API_KEY_NOT_VALID")  # the deliberate mistake, answered as one (SMSHub: its own word)
    # nothing was bought, nothing changed: only free actions reached the server
    assert sim.ledger.purchases == [] and {r.action for r in sim.ledger.requests} <= FREE_ACTIONS


@pytest.mark.parametrize(("preset", "served", "expected"), [
    # classic presets on a HeroSMS server: real HTTP statuses and envelopes where 200 text is declared
    ("grizzly", "herosms", {("wrong key", "status"), ("unknown action", "status"), ("unknown activation", "status"),
                            ("countries", "content type")}),
    ("herosms", "sms-activate", {("wrong key", "status"), ("unknown activation", "status"), ("bad country", "shape")}),
    ("sms-activate", "tiger", {("wrong key", "status"), ("unknown action", "status")}),  # Tiger: plain 401 BAD_KEY
])
async def test_a_mismatched_pair_names_each_difference(preset: str, served: str, expected: set[tuple[str, str]]) -> None:
    sim = Simulator(provider=served)
    async with SMSActivate(sim.api_key, provider=preset, transport=sim.transport()) as client:
        report = await client.doctor()
    assert not report.ok
    found = {(f.probe, field) for f in report.findings for field in f.field.split(", ")}
    assert expected <= found, found
    assert len({f.probe for f in report.findings}) == len(report.findings)  # one row per probe
    for finding in report.findings:
        assert finding.expected != finding.got.split(" — ")[0] and finding.advice


def test_the_cli_doctor_on_a_real_port(tmp_path: Path) -> None:
    from smsactivate_async._cli import cli

    sim = Simulator(provider="herosms")
    record = tmp_path / "traffic.jsonl"
    with serve_in_thread(sim) as url:
        ok = CliRunner().invoke(cli, ["--api-key", sim.api_key, "--provider", "herosms", "--base-url", url,
                                      "doctor", "--record", str(record)])
        wrong = CliRunner().invoke(cli, ["--api-key", sim.api_key, "--provider", "sms-activate", "--base-url", url,
                                         "--json", "doctor"])
    assert ok.exit_code == 0, ok.output
    assert "All 11 answers match" in ok.output
    assert wrong.exit_code == 1
    answer = json.loads(wrong.output)
    findings = answer["findings"]
    assert any(f["probe"] == "wrong key" for f in findings)
    # the profile compared with, under its name; "dialect" its former one, kept for scripts
    assert answer["profile"] == answer["dialect"] == "sms-activate"
    recorded = {exchange["action"] for exchange in load_recording(record)}
    assert {"getBalance", "getCountries", "getHistory", "doctorUnknownAction"} <= recorded  # the probes, recorded
    assert sim.api_key not in record.read_text()


# --- recording ----------------------------------------------------------------------------------------


async def test_a_recording_holds_no_key_no_phone_no_code(tmp_path: Path) -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=0)
    path = tmp_path / "traffic.jsonl"
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), record=path,
                           poll_interval=0.02, early_cancel_window=0) as client:
        number = await client.get_number_v2(service="tg", country=6)
        sim.deliver_sms(number.activation_id, "Your code is 778899", code="778899")
        assert await client.wait_for_code(number.activation_id, timeout=5) == "778899"
        await client.set_status(number.activation_id, 6)
    text = path.read_text()
    assert sim.api_key not in text and number.phone_number not in text and "778899" not in text
    exchanges = load_recording(path)
    assert {"getNumberV2", "getStatus", "setStatus"} <= {e["action"] for e in exchanges}
    assert all(e["status"] and "elapsed" in e and "content-type" in {k.lower() for k in e["headers"]}
               for e in exchanges)


async def test_the_doctor_leaves_a_transport_it_was_given_open() -> None:
    closed: list[bool] = []

    class Owned(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            assert not closed, "a request on a closed transport"
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            closed.append(True)

    sim = Simulator()
    async with SMSActivate(sim.api_key, transport=Owned(sim.transport())) as client:
        await client.doctor()
        assert not closed
        assert await client.get_balance() > 0  # the client goes on with it


async def test_a_recording_with_secrets_keeps_them_but_never_the_key(tmp_path: Path) -> None:
    sim = Simulator(codes=CodeSchedule.never())
    path = tmp_path / "traffic.jsonl"
    async with SMSActivate(sim.api_key, transport=sim.transport(), record=path, record_secrets=True) as client:
        number = await client.get_number_v2(service="tg", country=2)
    text = path.read_text()
    assert number.phone_number in text and sim.api_key not in text


# --- replay -------------------------------------------------------------------------------------------


async def test_a_recorded_run_replays_as_a_test(tmp_path: Path) -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=0)
    path = tmp_path / "traffic.jsonl"
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), record=path,
                           record_secrets=True, poll_interval=0.02, early_cancel_window=0) as client:
        balance = await client.get_balance()
        number = await client.get_number_v2(service="tg", country=6)
        sim.deliver_sms(number.activation_id, "Your code is 1234", code="1234")
        code = await client.wait_for_code(number.activation_id, timeout=5)
        await client.set_status(number.activation_id, 6)
    transport = ReplayTransport(path)
    async with SMSActivate("another-key", provider="herosms", transport=transport, poll_interval=0.02,
                           early_cancel_window=0) as replayed:
        assert await replayed.get_balance() == balance
        again = await replayed.get_number_v2(service="tg", country=6)  # a new order id: still matched
        assert again.activation_id == number.activation_id
        assert await replayed.wait_for_code(again.activation_id, timeout=5) == code
        await replayed.set_status(again.activation_id, 6)
    assert transport.unmatched == []


def _recording(path: Path, *exchanges: tuple[dict[str, str], str]) -> Path:
    path.write_text("".join(json.dumps({"params": params, "status": 200, "headers": {}, "body": body}) + "\n"
                            for params, body in exchanges))
    return path


async def test_an_unrecorded_request_fails_at_once_naming_what_differs(tmp_path: Path) -> None:
    """Issue 44 item 4: no retries (it used to take 9.5 s as a "server error"), the parameter named."""
    from smsactivate_async import ReplayMismatchError

    path = _recording(tmp_path / "t.jsonl", ({"action": "getBalance"}, "ACCESS_BALANCE:5.00"),
                      ({"action": "getStatus", "id": "4"}, "STATUS_WAIT_CODE"))
    transport = ReplayTransport(path)
    async with SMSActivate("k", transport=transport, rate_limit=None) as client:
        assert str(await client.get_balance()) == "5.00"
        with anyio.fail_after(1), pytest.raises(ReplayMismatchError) as info:
            await client.get_status(5)
    error = info.value
    assert error.action == "getStatus" and error.code == "REPLAY_MISMATCH"
    assert error.differences == {"id": ("5", "4")}
    assert "id='5' (recorded '4')" in str(error)
    assert transport.unmatched == [{"action": "getStatus", "id": "5"}]
    assert transport.unused == [{"action": "getStatus", "id": "4"}]


async def test_replay_holds_the_recordings_order_unless_told_otherwise(tmp_path: Path) -> None:
    from smsactivate_async import ReplayMismatchError

    path = _recording(tmp_path / "t.jsonl", ({"action": "getBalance"}, "ACCESS_BALANCE:5.00"),
                      ({"action": "getStatus", "id": "4"}, "STATUS_WAIT_CODE"),
                      ({"action": "getStatus", "id": "4"}, "STATUS_OK:1234"))
    strict = ReplayTransport(path)
    async with SMSActivate("k", transport=strict, rate_limit=None) as client:
        with pytest.raises(ReplayMismatchError) as info:
            await client.get_status(4)  # moved before the balance
        assert info.value.expected == {"action": "getBalance"}
        assert "the recording's next request is getBalance()" in str(info.value)
        await client.get_balance()
        assert (await client.get_status(4)).code is None
        assert (await client.get_status(4)).code == "1234"
        assert (await client.get_status(4)).code == "1234"  # asked again: the last answer repeats
        with pytest.raises(ReplayMismatchError, match="no request left"):
            await client.get_balance()  # an extra call
    assert strict.unused == []
    loose = ReplayTransport(path, order="per-action")
    async with SMSActivate("k", transport=loose, rate_limit=None) as client:
        assert (await client.get_status(4)).code is None
        assert str(await client.get_balance()) == "5.00"
        assert (await client.get_status(4)).code == "1234"
    anyhow = ReplayTransport(path, order="any")
    async with SMSActivate("k", transport=anyhow, rate_limit=None) as client:
        assert (await client.get_status(4)).code is None
        assert (await client.get_status(4)).code == "1234"
        assert anyhow.unused == [{"action": "getBalance"}]
    with pytest.raises(InvalidArgumentError, match="order"):
        ReplayTransport(path, order="sometimes")  # type: ignore[arg-type]


async def test_a_recording_without_secrets_replays_placeholders(tmp_path: Path) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    path = tmp_path / "traffic.jsonl"
    async with SMSActivate(sim.api_key, transport=sim.transport(), record=path, rate_limit=None,
                           poll_interval=0.02, early_cancel_window=0) as client:
        number = await client.get_number_v2(service="tg", country=0)
        sim.deliver_sms(number.activation_id, "Your code is 1234", code="1234")
        await client.wait_for_code(number.activation_id, timeout=5)
    async with SMSActivate("k", transport=ReplayTransport(path, order="per-action"), rate_limit=None,
                           poll_interval=0.02) as replayed:
        again = await replayed.get_number_v2(service="tg", country=0)
        assert again.phone_number == "<phone>"
        assert await replayed.wait_for_code(again.activation_id, timeout=5) == "<code>"


def test_sms_replay_fails_a_test_that_leaves_recorded_requests_unasked(pytester: pytest.Pytester) -> None:
    recording = pytester.path / "t.jsonl"
    _recording(recording, ({"action": "getBalance"}, "ACCESS_BALANCE:5.00"),
               ({"action": "getCountries"}, "{}"))
    pytester.makepyfile(f"""
        import anyio

        def test_only_the_balance(sms_replay):
            async def main():
                async with sms_replay({str(recording)!r}) as client:
                    await client.get_balance()
            anyio.run(main)

        def test_allowed(sms_replay):
            async def main():
                async with sms_replay({str(recording)!r}, allow_unused=True) as client:
                    await client.get_balance()
            anyio.run(main)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*1 recorded request(s) of*never asked for: action=getCountries*"])


def test_a_file_that_is_not_a_recording_is_a_clear_error(tmp_path: Path) -> None:
    from smsactivate_async import InvalidArgumentError

    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(InvalidArgumentError, match="not a JSON line"):
        load_recording(bad)


def test_the_plugin_replays_a_recording(pytester: pytest.Pytester, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"params": {"action": "getBalance"}, "status": 200, "headers": {},
                                "body": "ACCESS_BALANCE:7.50"}) + "\n")
    pytester.makepyfile(f'''
import pytest
pytestmark = pytest.mark.anyio

async def test_balance(sms_replay):
    async with sms_replay({str(path)!r}) as client:
        assert str(await client.get_balance()) == "7.50"
''')
    result = pytester.runpytest("-p", "anyio", "-o", "asyncio_default_fixture_loop_scope=function")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and not outcomes.get("failed") and not outcomes.get("errors")


# --- a recording checked against the simulator's profile -----------------------------------------------


async def test_doctor_against_a_recording_names_the_differences(tmp_path: Path) -> None:
    sim = Simulator(provider="herosms")
    path = tmp_path / "traffic.jsonl"
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), record=path) as client:
        await client.get_balance()
        await client.get_active_activations()
        await client.get_countries()
    exchanges = load_recording(path)
    assert (await check_recording(exchanges, PROVIDERS["herosms"])).ok
    mismatched = await check_recording(exchanges, PROVIDERS["sms-activate"])
    assert {f.probe.split(" ", 1)[1] for f in mismatched.findings} >= {"getActiveActivations"}


def test_doctor_probes_only_free_actions() -> None:
    from smsactivate_async._doctor import _probes

    for preset in PROVIDERS.values():
        for _, params, _ in _probes(preset):
            assert params["action"] in FREE_ACTIONS
    assert not {"getNumber", "getNumberV2", "setStatus", "getRentNumber"} & FREE_ACTIONS


async def test_rate_limit_headers_the_preset_does_not_expect_are_named() -> None:
    """A provider that starts announcing its limits in headers: the doctor says so, and where to look."""
    sim = Simulator()

    async def with_limits(request: httpx.Request) -> httpx.Response:
        async with httpx.AsyncClient(transport=sim.transport()) as inner:
            answer = await inner.get(str(request.url))
        return httpx.Response(answer.status_code, content=answer.content,
                              headers={**answer.headers, "X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "49"})

    async with SMSActivate(sim.api_key, transport=httpx.MockTransport(with_limits)) as client:
        report = await client.doctor()
    limits = [f for f in report.findings if f.field == "rate-limit headers"]
    assert limits and "x-ratelimit-limit" in limits[0].got and "rate_limit" in limits[0].advice


@pytest.mark.parametrize("preset", DIALECTS)
async def test_against_any_other_preset_the_doctor_names_the_one_that_fits(preset: str) -> None:
    """Issue 44 items 1 and 3: every pair of presets is told apart by free probes, and the one served
    is named with a ready line that turns the report green."""
    for served in DIALECTS:
        sim = Simulator(provider=served)
        async with SMSActivate(sim.api_key, provider=preset, transport=sim.transport()) as client:
            report = await client.doctor()
        assert report.best_fit == served and report.best_fit_differences == 0, (preset, served, report.findings)
        if served == preset:
            assert report.ok and report.suggestion is None
        else:
            assert report.findings and report.suggestion is not None
            assert f'provider="{served}"' in report.suggestion and "base_url=" in report.suggestion


async def test_a_preset_is_compared_as_what_it_declares_not_by_its_name() -> None:
    import attrs as _attrs

    sim = Simulator(provider="sms-activate")
    renamed = _attrs.evolve(PROVIDERS["herosms"], dialect="sms-activate", base_url="http://x/stubs/handler_api.php")
    async with SMSActivate(sim.api_key, provider=renamed, transport=sim.transport()) as client:
        report = await client.doctor()
    assert report.profile != "herosms"  # a classic-dialect profile, the closest to what it declares
    assert report.best_fit == "sms-activate" and report.best_fit_differences == 0


def _quirky(request: httpx.Request) -> httpx.Response:
    """A provider with a bad day: an edge page, a throttle without headers, an odd catalogue."""
    action = request.url.params.get("action")
    if action == "getBalance" and request.url.params.get("api_key") != "0" * 32:
        return httpx.Response(502, text="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                              headers={"content-type": "text/html"})
    if action == "getPrices" and request.url.params.get("country") == "2":
        return httpx.Response(429, text="Too Many Requests")
    if action == "getCountries":
        return httpx.Response(200, json={"2": {"id": 2, "eng": "Kazakhstan"}}, headers={"content-type": "text/html"})
    sim_answer = _CLASSIC.transport()  # everything else as the classic dialect answers it
    raise _Delegate(sim_answer)


class _Delegate(Exception):
    def __init__(self, transport: Any) -> None:
        self.transport = transport


_CLASSIC = Simulator()


async def test_every_quirk_gets_advice_that_fits_its_cause() -> None:
    class Quirky(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return _quirky(request)
            except _Delegate as delegate:
                response: httpx.Response = await delegate.transport.handle_async_request(request)
                if request.url.params.get("action") == "getNumbersStatus":  # the same counts, as numbers
                    await response.aread()
                    counts = {k: int(v) for k, v in json.loads(response.content).items()}
                    return httpx.Response(200, json=counts, headers={"content-type": "text/html"})
                return response

    async with SMSActivate(_CLASSIC.api_key, transport=Quirky()) as client:
        report = await client.doctor()
    advice = {f.probe: f.advice for f in report.findings}
    assert "down or behind a proxy" in advice["balance"]
    assert "rate limited" in advice["prices"] and "no Retry-After" in advice["prices"]
    assert "countries 0, 12 absent" in advice["countries"]
    assert "counts as numbers" in advice["numbers in stock"] and "counts as strings" in advice["numbers in stock"]
    assert len({f.probe for f in report.findings}) == len(report.findings)
    balance = next(o for o in report.observations if o.probe == "balance")
    assert balance.code == "HTTP_502"
    ok = next(o for o in report.expected if o.probe == "balance")
    assert ok.code is None  # a successful balance shows no error code (it used to show ACCESS_BALANCE)


async def test_a_provider_that_never_answers_is_reported_within_the_timeout() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    async with SMSActivate("k", transport=httpx.MockTransport(hang), timeout=1.0) as client:
        with anyio.fail_after(10):
            report = await client.doctor()
    assert all(o.status is None for o in report.observations)
    assert all("no answer within the client's timeout" in f.advice for f in report.findings)


# --- issue 44 item 3: exactly the declared differences ------------------------------------------------------
#
# What each probe shows of a simulator profile, written from the profiles' declared fields alone (not from
# the doctor): two profiles whose views differ in a column must get that finding, and no other.

def _view(p: DialectProfile) -> dict[str, dict[str, object]]:
    json_type = p.json_content_type.split(";")[0]

    def token(status: int, code: str) -> dict[str, object]:
        code = p.token_renames.get(code, code)
        return {"status": status, "content type": "text/html", "shape": f"text {code}", "error code": code}

    def envelope(status: int, title: str) -> dict[str, object]:
        return {"status": status, "content type": json_type, "shape": f"envelope {title}", "error code": title}

    listing: dict[str, object] = {"content type": json_type}
    return {
        "balance": {"format": p.balance_decimals},
        "countries": {**listing, "format": p.absent_countries},
        "services": listing,
        "prices": {**listing, "format": p.price_string_decimals, "shape": p.prices_blank_country_row},
        "numbers in stock": {**listing, "format": p.numbers_status_counts_as_strings},
        "active activations": listing,
        "history": listing,
        "wrong key": (token(401, "BAD_KEY") if p.bad_key_plain_401
                      else envelope(401, "BAD_KEY") if p.http_errors else token(200, "BAD_KEY")),
        "unknown action": envelope(404, "BAD_ACTION") if p.http_errors else token(200, "BAD_ACTION"),
        "bad country": {**listing, "shape": p.filters_answer_status_false, "error code": p.filters_answer_status_false},
        "unknown activation": (envelope(404, "NOT_FOUND") if p.unknown_activation_not_found
                               else token(200, "NO_ACTIVATION")),
    }


#: the fields `_view` reads
_SEEN = {"json_content_type", "token_renames", "balance_decimals", "absent_countries", "price_string_decimals",
         "prices_blank_country_row", "numbers_status_counts_as_strings", "bad_key_plain_401", "http_errors",
         "filters_answer_status_false", "unknown_activation_not_found"}
#: the fields free probes cannot show, each with the line of `doctor.UNPROBED` that says so
_UNSEEN = {
    "order_id_idempotent": "orderId", "early_cancel_seconds": "early-cancel", "accepts_ready": "setStatus 1",
    "finish_before_code_refunds": "changes a status", "number_v2_shape": "getNumberV2",
    "number_v2_end_and_cancel": "getNumberV2", "bad_service_text": "bad service", "v2_bad_service_status": "bad service",
    "max_price_param": "needs a purchase", "country_required": "needs a purchase",
    "active_list": "paging", "history_page_param": "paging", "history_ids_as_strings": "row types",
    "expired_history_status": "row types", "cancelled_token": "status token", "legacy_cancel": "status token",
    "currency": "Free Price and rent", "webhook_iso_times": "webhook", "webhook_retry_delay": "webhook",
    "retry_after_header": "Retry-After", "operators_not_found_text": "needs a purchase",
    # the doctor asks getStatus with a numeric id; a plain answer differs only for a non-numeric one
    "unknown_activation_plain": "status token", "dropped_actions": "rent answers", "extra_actions": "needs a purchase",
}


def test_every_profile_field_is_either_probed_or_said_to_be_unprobed() -> None:
    fields = {f.name for f in attrs.fields(DialectProfile)} - {"name"}
    assert _SEEN.isdisjoint(_UNSEEN) and fields == _SEEN | set(_UNSEEN), fields ^ (_SEEN | set(_UNSEEN))
    for field, words in _UNSEEN.items():
        assert any(words in line for line in UNPROBED), (field, words)


@pytest.mark.parametrize("preset", DIALECTS)
async def test_the_doctor_names_exactly_the_declared_differences(preset: str) -> None:
    for served in DIALECTS:
        sim = Simulator(provider=served)
        async with SMSActivate(sim.api_key, provider=preset, transport=sim.transport()) as client:
            report = await client.doctor()
        mine, theirs = _view(PROFILES[report.profile]), _view(PROFILES[served])
        declared = {(probe, column) for probe, view in mine.items() for column, value in view.items()
                    if theirs[probe][column] != value}
        found = {(f.probe, column) for f in report.findings for column in f.field.split(", ")}
        assert found == declared, (preset, served, found ^ declared)
        assert report.unprobed == UNPROBED


async def test_advice_fits_an_error_worded_otherwise_and_a_format_with_another_content_type() -> None:
    """Issue 44 item 2: SMSHub's own error words are named as words (not "report a shape"); a count format
    seen together with another Content-Type gets the format's advice, not the generic one."""
    sim = Simulator(provider="smshub")
    async with SMSActivate(sim.api_key, provider="sms-activate", transport=sim.transport()) as client:
        report = await client.doctor()
    advice = {f.probe: f.advice for f in report.findings}
    assert "worded 'NO_ACTION' where the preset expects 'BAD_ACTION'" in advice["unknown action"]
    assert "worded 'API_KEY_NOT_VALID'" in advice["wrong key"]
    sim = Simulator(provider="herosms")
    async with SMSActivate(sim.api_key, provider="sms-activate", transport=sim.transport()) as client:
        report = await client.doctor()
    advice = {f.probe: f.advice for f in report.findings}
    assert "counts as numbers" in advice["numbers in stock"] and "Content-Type" in advice["numbers in stock"]
    assert "absent" in advice["countries"] and "do not buy there" in advice["countries"]
    sim = Simulator(provider="tiger")
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport()) as client:
        report = await client.doctor()
    advice = {f.probe: f.advice for f in report.findings}
    assert "may be bought here" in advice["countries"] and "do not buy" not in advice["countries"]
    assert all("report it with a recording" not in a or "unknown word" in a for a in advice.values())
