"""The doctor: a real provider checked against its preset, without spending money.

``await client.doctor()`` (``smsactivate doctor``) sends only requests that cost nothing — the
balance, the catalogue, the prices, the numbers in stock, the active activations, the history, and
four deliberate mistakes (a wrong key, an unknown action, a country that does not exist, the status
of an activation that does not exist) — and compares each answer's HTTP status, content type, shape
error code and rate-limit headers with what the simulator's profile of the preset's dialect answers to
the same request; the time each answer took is shown.
Every difference is a :class:`DoctorFinding` with both answers as evidence and the preset setting it
points at. It never buys and never sets a status (:data:`FREE_ACTIONS` is checked before each probe).

A recording (``SMSActivate(record=...)``) can be checked the same way (:func:`check_recording`):
its read-only exchanges are replayed against the simulator and compared, so one user's capture of a
real provider shows where the preset guesses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from ._exceptions import InvalidArgumentError, SMSActivateError
from ._wire import decode_answer

if TYPE_CHECKING:
    from ._client import SMSActivate
    from ._providers import Provider

__all__ = ["FREE_ACTIONS", "DoctorReport", "DoctorFinding", "DoctorObservation", "check_recording", "observe", "run_doctor"]

#: the only actions the doctor sends: none of them buys, rents or changes a status
FREE_ACTIONS = frozenset({"getBalance", "getCountries", "getServicesList", "getPrices", "getNumbersStatus",
                          "getActiveActivations", "getHistory", "getStatus", "doctorUnknownAction"})
WRONG_KEY = "0" * 32


@attrs.frozen
class DoctorObservation:
    """One answer as the doctor sees it."""

    probe: str
    action: str
    status: int | None
    content_type: str | None
    shape: str
    code: str | None
    elapsed: float = 0.0
    excerpt: str = ""
    #: the rate-limit headers present (``Retry-After``, ``X-RateLimit-*``), by name
    limits: str = ""


@attrs.frozen
class DoctorFinding:
    """A difference between what the preset's profile answers and what the provider answered."""

    probe: str
    field: str
    expected: str
    got: str
    advice: str


@attrs.frozen
class DoctorReport:
    """What ``client.doctor()`` found: ``ok`` when the provider answered every probe as its preset says."""

    provider: str
    dialect: str
    observations: list[DoctorObservation]
    expected: list[DoctorObservation]
    findings: list[DoctorFinding]

    @property
    def ok(self) -> bool:
        """Whether nothing differed."""
        return not self.findings


def _probes(provider: Provider) -> list[tuple[str, dict[str, str], bool]]:
    """(name, wire parameters, with a wrong key) — free requests only."""
    country = "2"  # Kazakhstan: sold by every preset's provider (HeroSMS has no Russia)
    active: dict[str, str] = {"action": "getActiveActivations"}
    if provider.page_size:
        active.update(start="0", limit=str(provider.page_size))
    history_limit = next((own for action, classic, own in provider.wire_renames
                          if action == "getHistory" and classic == "limit"), "limit")
    return [
        ("balance", {"action": "getBalance"}, False),
        ("countries", {"action": "getCountries"}, False),
        ("services", {"action": "getServicesList"}, False),
        ("prices", {"action": "getPrices", "service": "tg", "country": country}, False),
        ("numbers in stock", {"action": "getNumbersStatus", "country": country}, False),
        ("active activations", active, False),
        ("history", {"action": "getHistory", history_limit: "10"}, False),
        ("wrong key", {"action": "getBalance"}, True),
        ("unknown action", {"action": "doctorUnknownAction"}, False),
        ("bad country", {"action": "getPrices", "service": "tg", "country": "99999"}, False),
        ("unknown activation", {"action": "getStatus", "id": "1"}, False),
    ]


def _keys(doc: Mapping[str, Any]) -> str:
    names = sorted({"<id>" if str(k).lstrip("-").isdigit() else str(k) for k in doc})
    return "{" + ",".join(names[:12]) + (",…" if len(names) > 12 else "") + "}"


def observe(probe: str, action: str, status: int | None, headers: Mapping[str, str], body: bytes,
            elapsed: float = 0.0) -> DoctorObservation:
    """How an answer looks: its status, content type, shape (a text token, a JSON object's keys, an
    error envelope's title…) and the error code the client reads from it."""
    content_type = headers.get("content-type")
    main = content_type.split(";")[0].strip().lower() if content_type else None
    text = body.decode("utf-8", errors="replace").strip()
    shape: str
    if not text:
        shape = "empty"
    elif text[:1] in ("{", "["):
        try:
            doc = json.loads(text)
        except ValueError:
            shape = "broken JSON"
        else:
            if isinstance(doc, dict) and "title" in doc:
                shape = f"envelope {doc.get('title')}"
            elif isinstance(doc, dict) and doc.get("status") in ("error", "false"):
                shape = f"JSON error {doc.get('error') or doc.get('message') or doc.get('msg')}"
            elif isinstance(doc, dict):
                shape = f"JSON object {_keys(doc)}"
            else:
                shape = "JSON array"
    elif text[:1] == "<":
        shape = "HTML page"
    else:
        shape = f"text {text.split(':', 1)[0][:40]}"
    code: str | None = None
    try:
        decode_answer(action=action, status_code=status or 0, body=body, headers=dict(headers), text_prefixes=(),
                      allow_empty=False)
    except SMSActivateError as exc:
        code = exc.code
    limits = ",".join(sorted(name.lower() for name in headers
                             if name.lower() == "retry-after" or name.lower().startswith("x-ratelimit")))
    return DoctorObservation(probe, action, status, main, shape, code, round(elapsed, 3), text[:160], limits)


def _advice(probe: str, field: str) -> str:
    if field == "rate-limit headers":
        return ("the provider announces its limits in headers: check Provider(rate_limit=…, rate_ceiling=…, "
                "rate_block_seconds=…) against them, and Faults(retry_after_header=…) in its simulator profile")
    if field == "content type":
        return ("another Content-Type: the client reads answers by their shape, not this header, but it is a sign "
                "of another dialect (check Provider(dialect=…))")
    if probe == "wrong key" or (field in ("status", "content type") and probe in ("unknown action", "bad country")):
        return ("errors come in another form: check Provider(dialect=…) — 'sms-activate' (HTTP 200 with text or "
                "JSON errors) or 'herosms' (real HTTP statuses with a title/details envelope)")
    if probe == "active activations":
        return "the active list has another shape or paging: check Provider(dialect=…, page_size=…)"
    if probe == "history":
        return "history pages differently: check Provider(wire_renames=(('getHistory', 'limit', …),))"
    if probe in ("numbers in stock", "prices") and field in ("status", "error code", "shape"):
        return "a country or catalogue difference: check Provider(country_required=…) and the countries it sells"
    if probe == "unknown activation":
        return "an unknown id answers differently: the client still maps it to ActivationNotFoundError if the code is known"
    return "a shape the preset does not expect: report it with a recording (SMSActivate(record=…))"


def compare(expected: Iterable[DoctorObservation], got: Iterable[DoctorObservation]) -> list[DoctorFinding]:
    """Each difference between two observations of the same probe."""
    findings = []
    by_probe = {o.probe: o for o in expected}
    for seen in got:
        wanted = by_probe.get(seen.probe)
        if wanted is None:
            continue
        for field, a, b in (("status", wanted.status, seen.status), ("content type", wanted.content_type,
                            seen.content_type), ("shape", wanted.shape, seen.shape), ("error code", wanted.code,
                            seen.code), ("rate-limit headers", wanted.limits, seen.limits)):
            if a != b:
                findings.append(DoctorFinding(seen.probe, field, str(a), f"{b} — {seen.excerpt[:80]!r}",
                                        _advice(seen.probe, field)))
    return findings


async def _run_probes(base_url: str, good: httpx.AsyncClient, wrong: httpx.AsyncClient,
                      probes: list[tuple[str, dict[str, str], bool]]) -> list[DoctorObservation]:
    observations = []
    for name, params, wrong_key in probes:
        if params["action"] not in FREE_ACTIONS:  # never buys, never sets a status, whatever a probe says
            raise InvalidArgumentError(f"the doctor sends free requests only, not {params['action']}")
        started = time.monotonic()
        try:
            response = await (wrong if wrong_key else good).get(base_url, params=params)
        except httpx.TransportError as exc:
            observations.append(DoctorObservation(name, params["action"], None, None,
                                                  f"no answer ({type(exc).__name__})", "TRANSPORT_ERROR",
                                                  round(time.monotonic() - started, 3)))
            continue
        observations.append(observe(name, params["action"], response.status_code, response.headers,
                                    response.content, time.monotonic() - started))
    return observations


def _profile_simulator(provider: Provider) -> Any:
    from .simulator import Simulator
    from .simulator._dialects import PROFILES

    dialect = provider.name if provider.name in PROFILES else provider.dialect
    return Simulator(dialect=dialect)  # type: ignore[arg-type]


async def _simulated(sim: Any, probes: list[tuple[str, dict[str, str], bool]]) -> list[DoctorObservation]:
    from ._transport import KeyTransport

    async with httpx.AsyncClient(transport=KeyTransport(sim.transport(), sim.api_key)) as good, \
            httpx.AsyncClient(transport=KeyTransport(sim.transport(), WRONG_KEY)) as wrong:
        return await _run_probes("http://simulator/stubs/handler_api.php", good, wrong, probes)


async def run_doctor(client: SMSActivate) -> DoctorReport:
    """The doctor for ``client``'s provider (see the module docs)."""
    provider = client.provider
    probes = _probes(provider)
    sim = _profile_simulator(provider)
    # The client's own connections (so that `record=` records the doctor too), and the same stack with
    # a deliberately wrong key.
    async with httpx.AsyncClient(transport=client._make_transport(WRONG_KEY, borrowed=True), timeout=30.0) as wrong:
        got = await _run_probes(provider.base_url, client._session.http, wrong, probes)
    expected = await _simulated(sim, probes)
    return DoctorReport(provider.name, sim.dialect, got, expected, compare(expected, got))


async def check_recording(exchanges: Iterable[Mapping[str, Any]], provider: Provider) -> DoctorReport:
    """A recording's read-only exchanges against the simulator's profile of ``provider``."""
    sim = _profile_simulator(provider)
    probes: list[tuple[str, dict[str, str], bool]] = []
    got: list[DoctorObservation] = []
    for index, record in enumerate(exchanges):
        params = {k: str(v) for k, v in dict(record.get("params") or {}).items()}
        if params.get("action") not in FREE_ACTIONS or "status" not in record:
            continue
        name = f"#{index + 1} {params['action']}"
        probes.append((name, params, False))
        got.append(observe(name, params["action"], int(record["status"]), dict(record.get("headers") or {}),
                           str(record.get("body", "")).encode(), float(record.get("elapsed") or 0.0)))
    expected = await _simulated(sim, probes)
    return DoctorReport(provider.name, sim.dialect, got, expected, compare(expected, got))
