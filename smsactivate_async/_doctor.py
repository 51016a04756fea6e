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
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from ._actions import ACTIONS
from ._exceptions import InvalidArgumentError, SMSActivateError
from ._wire import decode_answer

if TYPE_CHECKING:
    from ._providers import Provider

__all__ = ["FREE_ACTIONS", "UNPROBED", "DoctorReport", "DoctorFinding", "DoctorObservation", "check_recording", "observe",
           "run_doctor"]

#: the only actions the doctor sends: none of them buys, rents or changes a status
FREE_ACTIONS = frozenset({"getBalance", "getCountries", "getServicesList", "getPrices", "getNumbersStatus",
                          "getActiveActivations", "getHistory", "getStatus", "doctorUnknownAction"})
WRONG_KEY = "0" * 32
#: each action's text answers (``ACCESS_BALANCE``…): an answer, not an error code
_PREFIXES: dict[str, tuple[str, ...]] = {a.wire: a.text_prefixes for a in ACTIONS.values() if a.text_prefixes}


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
    #: how money, counts and the country list are written (balance decimals, prices and counts as
    #: strings or numbers, the usual countries absent): what a reader must accept
    format: str = ""


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
    #: the simulator profile the answers were compared with (a preset's name: the preset's own, or the
    #: closest of its wire dialect for a preset renamed or changed)
    profile: str
    observations: list[DoctorObservation]
    expected: list[DoctorObservation]
    findings: list[DoctorFinding]
    #: the simulator profile the provider's answers fit best, and how many differences remain with it
    best_fit: str | None = None
    best_fit_differences: int | None = None
    #: a ready line that turns the report green (when another preset fits better), e.g.
    #: ``SMSActivate(key, provider="smsbower", base_url="…")``
    suggestion: str | None = None
    #: what free probes cannot show, so what a green report does not vouch for (:data:`UNPROBED`)
    unprobed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether nothing differed."""
        return not self.findings

    @property
    def dialect(self) -> str:
        """The former name of :attr:`profile` (deprecated: a dialect is the wire decoding)."""
        warnings.warn("DoctorReport.dialect is now DoctorReport.profile", DeprecationWarning, stacklevel=2)
        return self.profile


#: the differences between providers that the doctor's free probes cannot see (each needs a purchase,
#: a status change, activations on the account, or a throttle during the run); a report lists them
UNPROBED: tuple[str, ...] = (
    "whether orderId makes a purchase idempotent (Provider.honours_order_id): needs a purchase",
    "the early-cancel window (Provider.early_cancel_window): needs a purchase and a cancel",
    "whether setStatus 1 is taken (Provider.supports_ready): changes a status",
    "getNumberV2's answer shape and a bad service's answer: needs a purchase",
    "the active list's paging (Provider.page_size) and history's row types: unseen on an account with "
    "no activation (an empty list looks alike in every dialect)",
    "a cancelled or finished activation's status token, the Free Price and rent answers, webhook payloads",
    "the 429 answer and its Retry-After: seen only if the provider throttles during the run",
)


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
    answer: Any = None
    try:
        answer = decode_answer(action=action, status_code=status or 0, body=body, headers=dict(headers),
                               text_prefixes=_PREFIXES.get(action, ()), allow_empty=False)
    except SMSActivateError as exc:
        code = exc.code
    limits = ",".join(sorted(name.lower() for name in headers
                             if name.lower() == "retry-after" or name.lower().startswith("x-ratelimit")))
    return DoctorObservation(probe, action, status, main, shape, code, round(elapsed, 3), text[:160], limits,
                             _format(action, answer) if code is None else "")


def _format(action: str, answer: Any) -> str:
    """How the answer writes what a reader must accept: money's decimals, strings or numbers, the
    usual countries present."""
    if action == "getBalance":
        payload = getattr(answer, "payload", None)
        if payload is None and isinstance(answer, Mapping):
            payload = answer.get("balance")
        if isinstance(payload, str):
            decimals = len(payload.strip().partition(".")[2])
            return f"balance with {decimals} decimals" if decimals else "balance without decimals"
    if action == "getPrices" and isinstance(answer, Mapping):
        costs = [row.get("cost") for rows in answer.values() if isinstance(rows, Mapping)
                 for row in rows.values() if isinstance(row, Mapping)]
        if costs:
            return "costs as strings" if all(isinstance(c, str) for c in costs) else "costs as numbers"
    if action == "getNumbersStatus" and isinstance(answer, Mapping) and answer:
        return "counts as strings" if all(isinstance(v, str) for v in answer.values()) else "counts as numbers"
    if action == "getCountries":
        ids = set()
        rows = answer.values() if isinstance(answer, Mapping) else answer if isinstance(answer, list) else []
        for key, row in zip(answer if isinstance(answer, Mapping) else [None] * len(rows), rows, strict=False):
            ident = row.get("id", key) if isinstance(row, Mapping) else key
            if ident is not None and str(ident).isdigit():
                ids.add(int(ident))
        if ids:
            absent = [str(c) for c in _USUAL_COUNTRIES if c not in ids]
            return f"countries {', '.join(absent)} absent" if absent else "countries 0, 12 present"
    return ""


#: countries every classic provider sells, and some do not (HeroSMS: no Russia, no USA)
_USUAL_COUNTRIES = (0, 12)


_FIELDS = ("status", "content type", "shape", "error code", "rate-limit headers", "format")


def _values(o: DoctorObservation) -> tuple[Any, ...]:
    return (o.status, o.content_type, o.shape, o.code, o.limits, o.format)


def _advice(probe: str, fields: list[str], wanted: DoctorObservation, seen: DoctorObservation) -> str:
    """Advice that fits the cause of one probe's difference: what the provider's answer says first."""
    if seen.status is None:
        return ("no answer within the client's timeout: the provider is unreachable from here (check base_url, a "
                "proxy, the network) — not a preset difference; run the doctor again when it answers")
    if seen.status == 429 or seen.code == "RATE_LIMIT":
        held = "a Retry-After header" if "retry-after" in seen.limits else "no Retry-After (a fixed block, as HeroSMS's)"
        return (f"rate limited ({held}): the account is blocked now — wait before asking again; set the preset's "
                "Provider(rate_limit=…, rate_block_seconds=…) to the provider's published limit")
    if seen.shape == "HTML page" or (seen.status >= 500 and wanted.status is not None and wanted.status < 500):
        return ("an HTML page or a server error: the server is down or behind a proxy / CDN page — try later; "
                "it says nothing of the preset")
    if (set(fields) <= {"shape", "error code"} and seen.shape.startswith("text ")
            and wanted.shape.startswith("text ")):
        return (f"this error is worded {seen.code!r} where the preset expects {wanted.code!r} (SMSHub words its "
                "errors so): the client maps the words it knows to the same exceptions — a preset with the "
                "provider's words (its simulator profile's token_renames) makes the report green; an unknown "
                "word, report it with a recording (SMSActivate(record=…))")
    if probe == "wrong key":
        return ("key errors come in another form: check Provider(dialect=…) — 'sms-activate' (HTTP 200 with text or "
                "JSON errors) or 'herosms' (real HTTP statuses with a title/details envelope); the client maps "
                "either word to AuthenticationError")
    if fields == ["format"]:
        return _format_advice(wanted.format, seen.format)
    if set(fields) == {"format", "content type"}:
        return (_format_advice(wanted.format, seen.format) + "; and another Content-Type, a sign of another "
                "dialect (check Provider(dialect=…))")
    if fields == ["rate-limit headers"]:
        return ("the provider announces its limits in headers: check Provider(rate_limit=…, rate_ceiling=…, "
                "rate_block_seconds=…) against them")
    if fields == ["content type"]:
        return ("another Content-Type: the client reads answers by their shape, not this header, but it is a sign "
                "of another dialect (check Provider(dialect=…))")
    if probe in ("unknown action", "bad country") and set(fields) & {"status", "content type"}:
        return ("errors come in another form: check Provider(dialect=…) — 'sms-activate' (HTTP 200 with text or "
                "JSON errors) or 'herosms' (real HTTP statuses with a title/details envelope)")
    if probe == "active activations":
        return ("the active list has another shape or paging: check Provider(dialect=…, page_size=…) (on an account "
                "with no activation the pages cannot be told apart: unprobed)")
    if probe == "history":
        return "history pages differently: check Provider(wire_renames=(('getHistory', 'limit', …),))"
    if probe == "unknown activation":
        return "an unknown id answers differently: the client still maps it to ActivationNotFoundError if the code is known"
    if probe == "prices" and "shape" in fields:
        return ("the price list has another layout (a row keyed by no country, say): the client reads it; the "
                "preset's simulator profile should declare it")
    return "a shape the preset does not expect: report it with a recording (SMSActivate(record=…))"


def _format_advice(wanted: str, seen: str) -> str:
    if "absent" in seen:
        return (f"{seen}: do not buy there — Provider(country_required=…) makes the client ask for a country; the "
                "preset's simulator profile should declare absent_countries")
    if "absent" in wanted:
        return (f"{seen}, which the preset expects absent: they may be bought here; the preset's simulator profile "
                "should not declare them absent_countries")
    return (f"{seen}, the preset expects {wanted}: the client reads both (money as Decimal either way); the preset's "
            "simulator profile should declare it")


def compare(expected: Iterable[DoctorObservation], got: Iterable[DoctorObservation]) -> list[DoctorFinding]:
    """The differences between two observations of the same probes: one row per probe, the fields that
    differ named together, with advice that fits the cause."""
    findings = []
    by_probe = {o.probe: o for o in expected}
    for seen in got:
        wanted = by_probe.get(seen.probe)
        if wanted is None:
            continue
        fields = [name for name, a, b in zip(_FIELDS, _values(wanted), _values(seen), strict=True) if a != b]
        if not fields:
            continue
        described = [(name, a, b) for name, a, b in zip(_FIELDS, _values(wanted), _values(seen), strict=True)
                     if name in fields]
        findings.append(DoctorFinding(
            seen.probe, ", ".join(fields), "; ".join(f"{name} {a}" for name, a, _ in described),
            "; ".join(f"{name} {b}" for name, _, b in described) + f" — {seen.excerpt[:80]!r}",
            _advice(seen.probe, fields, wanted, seen)))
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


def _profile_for(provider: Provider) -> str:
    """The simulator profile to compare with: the preset's own when the provider is a preset as shipped
    (whatever its base URL), else the profile of the preset with the same dialect whose declared options
    are closest — a preset renamed, or with its dialect changed, is compared as what it declares."""
    from ._providers import PROVIDERS
    from .simulator._dialects import PROFILES

    def declared(p: Provider) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(p, recurse=False).items() if k not in ("name", "base_url")}

    mine = declared(provider)
    shipped = PROVIDERS.get(provider.name)
    if shipped is not None and provider.name in PROFILES and declared(shipped) == mine:
        return provider.name

    def closeness(name: str) -> tuple[int, int]:
        theirs = declared(PROVIDERS[name])
        return (int(theirs["dialect"] == mine["dialect"]), sum(1 for k, v in mine.items() if theirs.get(k) == v))

    return max((name for name in PROFILES if name in PROVIDERS), key=closeness)


def _profile_simulator(name: str) -> Any:
    from .simulator import Simulator

    return Simulator(provider=name)


async def _simulated(sim: Any, probes: list[tuple[str, dict[str, str], bool]]) -> list[DoctorObservation]:
    from ._transport import KeyTransport

    async with httpx.AsyncClient(transport=KeyTransport(sim.transport(), sim.api_key)) as good, \
            httpx.AsyncClient(transport=KeyTransport(sim.transport(), WRONG_KEY)) as wrong:
        return await _run_probes("http://simulator/stubs/handler_api.php", good, wrong, probes)


async def _report(provider: Provider, probes: list[tuple[str, dict[str, str], bool]],
                  got: list[DoctorObservation], base_url: str | None) -> DoctorReport:
    """``got`` against the provider's profile, and against every profile for the one that fits best."""
    from .simulator._dialects import PROFILES

    chosen = _profile_for(provider)
    fits: dict[str, tuple[list[DoctorObservation], list[DoctorFinding]]] = {}
    for name in PROFILES:
        expected = await _simulated(_profile_simulator(name), probes)
        fits[name] = (expected, compare(expected, got))
    expected, findings = fits[chosen]
    best = min(fits, key=lambda name: (len(fits[name][1]), name != chosen))
    suggestion = None
    if len(fits[best][1]) < len(findings):
        where = f", base_url={base_url!r}" if base_url else ""
        suggestion = f'SMSActivate(key, provider="{best}"{where})'
    return DoctorReport(provider.name, chosen, got, expected, findings, best, len(fits[best][1]), suggestion,
                        UNPROBED)


async def run_doctor(provider: Provider, http: httpx.AsyncClient, wrong_key: httpx.AsyncBaseTransport) -> DoctorReport:
    """The doctor for ``provider`` (see the module docs): its probes sent through ``http`` (the
    client's own connections), the wrong-key one through ``wrong_key`` (the same stack, keyed so)."""
    probes = _probes(provider)
    async with httpx.AsyncClient(transport=wrong_key, timeout=30.0) as wrong:
        got = await _run_probes(provider.base_url, http, wrong, probes)
    return await _report(provider, probes, got, provider.base_url)


async def check_recording(exchanges: Iterable[Mapping[str, Any]], provider: Provider) -> DoctorReport:
    """A recording's read-only exchanges against the simulator's profile of ``provider``."""
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
    return await _report(provider, probes, got, None)
