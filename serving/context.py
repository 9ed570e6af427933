"""Agentic context: what an assistant may be told about a session, as Signals' JSON or as
Persona's narrative, with no raw personal data in either.

``agentic_context(api, name, identifier, format)`` answers the SDK's ``get_agentic_context``:

- ``json``: Signals' ``AgenticContextResponse`` — the event log's recent events (its
  projection, oldest first), its prompt and a one-line summary;
- ``narrative``: a short factual text for an LLM: the log's prompt, the session's recent
  events in words, and what the warehouse knows of the user behind it — lifecycle, RFM,
  engagement, interests, segments, and recommendations scored live (``Api.decide``: the
  served rule set, the udfs core). ``max_tokens`` caps its size (about 4 characters a token):
  the oldest events go first, the profile summary stays.

Privacy, in both formats: identifiers (``domain_userid``, ``user_id``, ``network_userid``,
``domain_sessionid``) become stable salted pseudonyms (``Pseudonyms``: HMAC-SHA256 with a salt
from ``PERSONA_CONTEXT_SALT`` or a file in the state dir, never in the repository); IP
addresses, fingerprints, precise location, click ids, query strings and fragments are
withheld; e-mail addresses and IP addresses found inside any text are masked; URLs lose their
query and fragment. The same state gives the same text (no clock in it; ordered throughout).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.errors import BadRequest
from serving.event_logs import BUILTIN

SALT_ENV = "PERSONA_CONTEXT_SALT"
SALT_FILE = "context_salt"
# atomic fields that identify a person or a device: shown as pseudonyms
ID_FIELDS = {"domain_userid": "device", "user_id": "user", "network_userid": "device",
             "domain_sessionid": "session", "refr_domain_userid": "device"}  # fmt: skip
# atomic fields withheld altogether: no transformation makes them safe to hand to an LLM
WITHHELD = frozenset({
    "user_ipaddress", "user_fingerprint", "ip_isp", "ip_organization", "ip_domain",
    "ip_netspeed", "geo_latitude", "geo_longitude", "geo_zipcode", "page_urlquery",
    "refr_urlquery", "page_urlfragment", "refr_urlfragment", "mkt_clickid", "mkt_term",
    "refr_term", "txn_id", "tr_orderid", "ti_orderid",
})  # fmt: skip
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}\b")
_URL = re.compile(r"\b(https?://[^\s?#\"']*)[?#][^\s\"']*")
# the profile columns the narrative tells, in order (those the warehouse has)
PROFILE_FIELDS = (
    "lifecycle_stage", "rfm_segment", "recency_score", "frequency_score", "monetary_score",
    "engagement_tier", "sessions", "purchases", "revenue", "revenue_90d", "avg_order_value",
    "days_since_first_visit", "days_since_last_visit", "days_since_last_purchase",
    "top_categories", "top_products", "preferred_channel", "preferred_device_type",
    "is_identified", "as_of",
)  # fmt: skip
CHARS_PER_TOKEN = 4
RECOMMENDATIONS = 5


def load_salt(state_dir: Path | None) -> str:
    """``PERSONA_CONTEXT_SALT``, else a random salt kept in ``state_dir/context_salt`` (made
    once, readable by its owner only), so pseudonyms are stable across restarts and shared by
    the API and ``persona mcp`` over the same state dir."""
    salt = os.environ.get(SALT_ENV, "")
    if salt:
        return salt
    if state_dir is None:
        return secrets.token_hex(32)  # a process without state: stable while it runs
    path = state_dir / SALT_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


class Pseudonyms:
    """``kind-<12 hex>``: HMAC-SHA256 of the id under the salt; stable, not reversible
    without the salt (and the ids it was applied to)."""

    def __init__(self, salt: str) -> None:
        self._key = salt.encode()

    def __call__(self, kind: str, value: Any) -> str:
        digest = hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}-{digest[:12]}"


def scrub_text(text: str) -> str:
    """Masks e-mail and IP addresses; strips URLs' query strings and fragments."""
    text = _URL.sub(r"\1", text)
    text = _EMAIL.sub("[email]", text)
    text = _IPV6.sub("[ip]", _IPV4.sub("[ip]", text))
    return text


def scrub(name: str, value: Any, pseudonym: Pseudonyms) -> Any:
    """One projected value as it may leave Persona."""
    if value is None:
        return None
    if name in WITHHELD:
        return "[withheld]"
    if name in ID_FIELDS:
        return pseudonym(ID_FIELDS[name], value)
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        return [scrub(name, v, pseudonym) for v in value]
    if isinstance(value, dict):
        return {k: scrub(k, v, pseudonym) for k, v in value.items()}
    return value


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public_event(entry: Mapping[str, Any], pseudonym: Pseudonyms) -> dict[str, Any]:
    props = {k: scrub(k, v, pseudonym) for k, v in sorted(entry["p"].items())}
    return {"event_name": entry.get("e"), "collector_tstamp": _iso(entry["t"]), **props}


def _summary(events: Sequence[Mapping[str, Any]], max_age: int) -> str:
    if not events:
        return f"No events in the last {max_age} seconds."
    counts: dict[str, int] = {}
    for e in events:
        kind = _kind(e)
        counts[kind] = counts.get(kind, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    span = round((events[-1]["t"] - events[0]["t"]) / 60000)
    return f"{len(events)} events over {span} min ({_iso(events[0]['t'])} to " \
           f"{_iso(events[-1]['t'])}): {parts}."  # fmt: skip


def _kind(entry: Mapping[str, Any]) -> str:
    action = entry["p"].get("action")
    return str(action) if action else str(entry.get("e"))


def agentic_context(api: Any, name: str, identifier: str, format: str = "json",
                    max_tokens: int | None = None) -> dict[str, Any] | str:  # fmt: skip
    """Signals' ``GET event_log`` for ``api`` (a ``serving.service.Api`` with event logs)."""
    if format not in ("json", "narrative"):
        raise BadRequest(f"format must be json or narrative, got {format!r}")
    if max_tokens is not None and max_tokens < 1:
        raise BadRequest(f"max_tokens must be a positive integer, got {max_tokens!r}")
    event_log, entries = api.event_logs.recent(name, identifier)
    pseudonym = api.pseudonyms
    if format == "json":
        return {
            "name": event_log.name, "version": event_log.version,
            "attribute_key": event_log.key, "identifier": identifier,
            "prompt": event_log.prompt,
            "started_at_ms": entries[0]["t"] if entries else 0,
            "summary": _summary(entries, event_log.max_age_seconds),
            "events": [_public_event(e, pseudonym) for e in entries],
        }  # fmt: skip
    if name != BUILTIN and not entries:  # the session may still be told by Persona's own log
        _, entries = api.event_logs.recent(BUILTIN, identifier)
    facts = session_facts(api, identifier, entries)
    return narrative(facts, entries, pseudonym, prompt=event_log.prompt, max_tokens=max_tokens)


def session_facts(api: Any, session: str | None, entries: Sequence[Mapping[str, Any]],
                  device: str | None = None,
                  user: str | None = None) -> dict[str, Any]:  # fmt: skip
    """What the warehouse and the live scoring say of the session's visitor: ``decide``'s
    answer (profile fields, segments, recommendations) plus the ids it was asked with."""
    for entry in reversed(entries):  # the latest event names the device (and user) best
        device = device or entry.get("d")
        user = user or entry.get("u")
    known = {f for f, _ in api.registry.group("profiles", 1).fields}
    request: dict[str, Any] = {"fields": [f for f in PROFILE_FIELDS if f in known],
                               "k": RECOMMENDATIONS}  # fmt: skip
    for key, value in (("domain_userid", device), ("user_id", user), ("domain_sessionid", session)):
        if value:
            request[key] = value
    if len(request) == 2:  # nothing to ask about
        return {"device": None, "user": None, "session": session, "decision": None}
    decision = api.decide(request)
    return {
        "device": device,
        "user": decision.get("user_id") or user,
        "session": decision.get("domain_sessionid") or session,
        "decision": decision,
    }


def _number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    if isinstance(value, float):
        return str(int(value))
    return str(value)


def profile_lines(facts: Mapping[str, Any], pseudonym: Pseudonyms) -> list[str]:
    """The profile summary: who (pseudonymized), lifecycle, RFM, engagement, interests,
    segments, recommendations."""
    decision = facts.get("decision") or {}
    profile = decision.get("profile") or {}
    f = profile.get("fields") or {}
    who = []
    if facts.get("user"):
        who.append(pseudonym("user", facts["user"]))
    if facts.get("device") and facts.get("device") != facts.get("user"):
        who.append("on " + pseudonym("device", facts["device"]))
    lines = [f"Visitor: {' '.join(who) or 'unknown'}."]
    if not profile.get("known"):
        lines.append("Profile: none yet (a new visitor: the warehouse has no history for them).")
    else:
        parts = []
        if f.get("lifecycle_stage"):
            parts.append(f"lifecycle stage {f['lifecycle_stage']}")
        if f.get("rfm_segment"):
            scores = "/".join(_number(f.get(k)) for k in
                              ("recency_score", "frequency_score", "monetary_score"))  # fmt: skip
            parts.append(f"RFM {f['rfm_segment']} (R/F/M {scores})")
        if f.get("engagement_tier"):
            parts.append(f"engagement {f['engagement_tier']}")
        history = [
            f"{_number(f[k])} {k if f[k] != 1 else k[:-1]}"
            for k in ("sessions", "purchases")
            if f.get(k) is not None
        ]
        if f.get("revenue") is not None:
            history.append(f"revenue {_number(f['revenue'])}")
        if f.get("revenue_90d") is not None:
            history.append(f"{_number(f['revenue_90d'])} in the last 90 days")
        if f.get("avg_order_value") is not None:
            history.append(f"average order {_number(f['avg_order_value'])}")
        if history:
            parts.append(", ".join(history))
        for k, label in (("days_since_first_visit", "first visit"),
                         ("days_since_last_visit", "last visit"),
                         ("days_since_last_purchase", "last purchase")):  # fmt: skip
            if f.get(k) is not None:
                days = "day" if f[k] == 1 else "days"
                parts.append(f"{label} {_number(f[k])} {days} ago")
        as_of = f" (as of {str(f['as_of'])[:19]}Z)" if f.get("as_of") else ""
        lines.append(f"Profile{as_of}: " + "; ".join(parts) + ".")
        interests = []
        if f.get("top_categories"):
            interests.append(f"top categories {str(f['top_categories']).replace(',', ', ')}")
        if f.get("top_products"):
            interests.append(f"top products {str(f['top_products']).replace(',', ', ')}")
        if f.get("preferred_channel"):
            interests.append(f"usually arrives via {f['preferred_channel']}")
        if f.get("preferred_device_type"):
            interests.append(f"on a {str(f['preferred_device_type']).lower()}")
        if interests:
            lines.append("Interests: " + "; ".join(scrub_text(i) for i in interests) + ".")
    segments = (decision.get("segments") or {}).get("segments") or []
    lines.append("Segments: " + (", ".join(sorted(segments)) if segments else "none") + ".")
    recs = decision.get("recommendations") or {}
    items = [i["product_id"] for i in recs.get("items", [])]
    if items:
        version = recs.get("rule_set_version")
        lines.append(f"Recommended now ({recs.get('strategy')}, rule set {version}): "
                     f"{', '.join(items)}.")  # fmt: skip
    return lines


def event_line(entry: Mapping[str, Any], pseudonym: Pseudonyms) -> str:
    """One event in words: the built-in log's events read as sentences, any other as its
    projected properties."""
    p = {k: scrub(k, v, pseudonym) for k, v in entry["p"].items()}
    when = _iso(entry["t"])[11:19]
    name = entry.get("e")
    action = p.get("action")
    if name == "page_view" and p.get("page_urlpath") is not None:
        title = f' "{p["page_title"]}"' if p.get("page_title") else ""
        return f"- {when} viewed page {p['page_urlpath']}{title}"
    if action in ("product_view", "add_to_cart", "remove_from_cart") and p.get("product_id"):
        verb = {"product_view": "viewed product", "add_to_cart": "added to cart",
                "remove_from_cart": "removed from cart"}[action]  # fmt: skip
        details = ", ".join(x for x in (
            str(p["category"]) if p.get("category") else "",
            f"{_number(p['price'])} {p.get('currency') or ''}".strip()
            if p.get("price") is not None else "",
        ) if x)  # fmt: skip
        return f"- {when} {verb} {p['product_id']}" + (f" ({details})" if details else "")
    if action == "transaction":
        total = p.get("revenue")
        money = f" of {_number(total)} {p.get('revenue_currency') or ''}".rstrip() if total else ""
        return f"- {when} completed a purchase{money}"
    if name == "site_search" and p.get("terms"):
        terms = p["terms"] if isinstance(p["terms"], list) else [p["terms"]]
        return f'- {when} searched for "{" ".join(str(t) for t in terms)}"'
    shown = ", ".join(f"{k}={v}" for k, v in sorted(p.items()) if v is not None)
    return f"- {when} {name}" + (f": {shown}" if shown else "")


def tokens(text: str) -> int:
    """Approximate tokens: about four characters each (English prose in GPT-style BPE)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def narrative(facts: Mapping[str, Any], entries: Sequence[Mapping[str, Any]],
              pseudonym: Pseudonyms, *, prompt: str | None = None,
              max_tokens: int | None = None) -> str:  # fmt: skip
    """The text: header, prompt, profile summary, then the session's events (oldest first);
    over ``max_tokens``, the oldest events are left out first and the count says so."""
    session = facts.get("session")
    head = ["Persona context for " + (pseudonym("session", session) if session else
                                      "an unknown session") + "."]  # fmt: skip
    if entries:
        head[0] += f" Latest event {_iso(entries[-1]['t'])}."
    if prompt:
        head.append(f"Instructions: {scrub_text(prompt)}")
    fixed = head + profile_lines(facts, pseudonym)
    lines = [event_line(e, pseudonym) for e in entries]

    def render(kept: list[str]) -> str:
        omitted = len(lines) - len(kept)
        if not lines:
            title = "Session activity: no recent events."
        else:
            title = f"Session activity ({len(kept)} of {len(lines)} recent events, oldest first"
            title += f"; {omitted} older left out for length):" if omitted else "):"
        return "\n".join([*fixed, title, *kept]) + "\n"

    kept = lines
    text = render(kept)
    if max_tokens is not None:
        while kept and tokens(text) > max_tokens:
            kept = kept[1:]
            text = render(kept)
    return text
