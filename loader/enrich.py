"""Enrichment: a Snowplow tracker-protocol payload, as the collector received it, to an event.

The result is an enriched TSV row (131 strings), typed by the same ``enriched.parse_fields``
that reads Snowplow Enrich's output, so collector events and enriched files share one contract.
Each step is one small function over the row; ``EnrichConfig`` switches them.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from loader.contract import FIELD_INDEX, FIELDS, utcnow
from loader.enriched import Event, FieldError, check_required, parse_fields
from loader.failed import ErrorType, FailedEvent

V_COLLECTOR = "persona-collector-0.1"
V_ETL = "persona-enrich-0.1"
_INDEX = FIELD_INDEX
_CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
_UA_CONTEXT = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0"
_ROBOTS = "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0"

# tracker parameter -> atomic field, copied as they are
_DIRECT = {
    "aid": "app_id", "p": "platform", "eid": "event_id", "tid": "txn_id", "tna": "name_tracker",
    "tv": "v_tracker", "uid": "user_id", "duid": "domain_userid", "sid": "domain_sessionid",
    "vid": "domain_sessionidx", "fp": "user_fingerprint", "page": "page_title", "tz": "os_timezone",
    "lang": "br_lang", "cs": "doc_charset", "cd": "br_colordepth", "cookie": "br_cookies",
    "f_pdf": "br_features_pdf", "f_fla": "br_features_flash", "f_java": "br_features_java",
    "f_dir": "br_features_director", "f_qt": "br_features_quicktime",
    "f_realp": "br_features_realplayer", "f_wma": "br_features_windowsmedia",
    "f_gears": "br_features_gears", "f_ag": "br_features_silverlight",
    "se_ca": "se_category", "se_ac": "se_action", "se_la": "se_label", "se_pr": "se_property",
    "se_va": "se_value", "pp_mix": "pp_xoffset_min", "pp_max": "pp_xoffset_max",
    "pp_miy": "pp_yoffset_min", "pp_may": "pp_yoffset_max",
    "tr_id": "tr_orderid", "tr_af": "tr_affiliation", "tr_tt": "tr_total", "tr_tx": "tr_tax",
    "tr_sh": "tr_shipping", "tr_ci": "tr_city", "tr_st": "tr_state", "tr_co": "tr_country",
    "tr_cu": "tr_currency", "ti_id": "ti_orderid", "ti_sk": "ti_sku", "ti_nm": "ti_name",
    "ti_ca": "ti_category", "ti_pr": "ti_price", "ti_qu": "ti_quantity", "ti_cu": "ti_currency",
    "refr_dtm": "refr_dvce_tstamp", "refr_duid": "refr_domain_userid",
}  # fmt: skip
_DIRECT_AT = {param: _INDEX[name] for param, name in _DIRECT.items()}
# e= -> (event, event_name) for the built-in event types
_EVENTS = {
    "pv": ("page_view", "page_view"), "pp": ("page_ping", "page_ping"),
    "se": ("struct", "event"), "tr": ("transaction", "transaction"),
    "ti": ("transaction_item", "transaction_item"), "ue": ("unstruct", None),
}  # fmt: skip
_SEARCH = {
    "www.google.com": ("Google", "q"), "google.com": ("Google", "q"), "www.bing.com": ("Bing", "q"),
    "duckduckgo.com": ("DuckDuckGo", "q"), "search.yahoo.com": ("Yahoo!", "p"),
    "yandex.ru": ("Yandex", "text"), "www.ecosia.org": ("Ecosia", "q"),
}  # fmt: skip
_SOCIAL = {
    "www.facebook.com": "Facebook", "m.facebook.com": "Facebook", "l.facebook.com": "Facebook",
    "t.co": "Twitter", "x.com": "Twitter", "www.linkedin.com": "LinkedIn",
    "www.instagram.com": "Instagram", "www.reddit.com": "Reddit", "www.pinterest.com": "Pinterest",
}  # fmt: skip
_EMAIL = {
    "mail.google.com": "Gmail",
    "outlook.live.com": "Outlook.com",
    "mail.yahoo.com": "Yahoo! Mail",
}
_CLICK_IDS = {
    "gclid": "Google",
    "msclkid": "Microsoft",
    "dclid": "DoubleClick",
    "fbclid": "Facebook",
}
_UTM = {"utm_medium": "mkt_medium", "utm_source": "mkt_source", "utm_term": "mkt_term",
        "utm_content": "mkt_content", "utm_campaign": "mkt_campaign"}  # fmt: skip


@dataclass(frozen=True)
class EnrichConfig:
    """Which enrichments run. Always on, as in Snowplow: event_id and the timestamps
    (derived_tstamp included), and the page and referrer URLs split into their ``*_url*``
    fields. IP anonymization and pseudonymization happen before the spool (``privacy``)."""

    classify_referrer: bool = True  # refr_medium/source/term
    campaign: bool = True  # mkt_* from utm_* parameters and click ids
    parse_useragent: bool = True
    detect_bots: bool = True


@dataclass(frozen=True)
class Received:
    """One tracker event as the collector got it: what the request said, and when."""

    payload: dict[str, str]
    collector_tstamp: datetime
    ip: str = ""
    useragent: str = ""
    network_userid: str = ""


def _ms(value: str) -> datetime:
    return datetime(1970, 1, 1) + timedelta(milliseconds=int(value))


def _fmt(ts: datetime) -> str:
    if ts.year < 1000:  # strftime's %Y does not pad on every platform: keep its exact output
        return ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    return ts.isoformat(" ", "milliseconds")  # truncates to the millisecond, as Snowplow does


_STANDARD_B64 = str.maketrans("-_", "+/")


def _b64(value: str) -> str:
    """Base64url as the trackers send it (unpadded), standard base64 accepted too. Strict: a
    character outside the alphabet is an error, not skipped (which would turn ``%%%`` into an
    empty, seemingly missing value)."""
    padded = value.translate(_STANDARD_B64) + "=" * (-len(value) % 4)
    return base64.b64decode(padded, validate=True).decode("utf-8")


def _set_url(row: list[str], prefix: str, url: str) -> dict[str, str]:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError as exc:
        raise FieldError(f"{'url' if prefix == 'page' else 'refr'}: {exc}") from exc
    for name, value in (("scheme", parts.scheme), ("host", parts.hostname or ""),
                        ("port", str(port) if port else ""), ("path", parts.path),
                        ("query", parts.query), ("fragment", parts.fragment)):  # fmt: skip
        row[_INDEX[f"{prefix}_url{name}"]] = value
    return dict(parse_qsl(parts.query))


def _version(family: str, *parts: str | None) -> str:
    """As Snowplow's ua_parser_context writes it: "Chrome 120.0.6099"."""
    numbers = ".".join(p for p in parts if p)
    return f"{family} {numbers}" if numbers else family


@functools.lru_cache(maxsize=4096)  # a site sees few distinct useragents; parsing is the cost
def _useragent_context(useragent: str) -> dict[str, Any]:
    from ua_parser import parse

    r = parse(useragent)
    ua, os_, device = r.user_agent, r.os, r.device
    return {
        "useragentFamily": ua.family if ua else "Other",
        "useragentMajor": ua.major if ua else None,
        "useragentMinor": ua.minor if ua else None,
        "useragentPatch": ua.patch if ua else None,
        "useragentVersion": _version(ua.family, ua.major, ua.minor, ua.patch) if ua else "Other",
        "osFamily": os_.family if os_ else "Other",
        "osMajor": os_.major if os_ else None,
        "osMinor": os_.minor if os_ else None,
        "osPatch": os_.patch if os_ else None,
        "osPatchMinor": os_.patch_minor if os_ else None,
        "osVersion": _version(os_.family, os_.major, os_.minor, os_.patch) if os_ else "Other",
        "deviceFamily": device.family if device else "Other",
    }


_CRAWLERS: Any = None


@functools.lru_cache(maxsize=4096)
def _is_bot(useragent: str) -> bool:
    global _CRAWLERS
    if _CRAWLERS is None:
        from crawlerdetect import CrawlerDetect

        _CRAWLERS = CrawlerDetect()
    return bool(useragent) and _CRAWLERS.isCrawler(useragent)


def enrich(received: Received, cfg: EnrichConfig, etl_tstamp: datetime | None = None) -> Event:
    """Raises ``FieldError`` (naming the parameter) when the payload cannot become an event."""
    return parse_fields(enrich_row(received, cfg, etl_tstamp))


def enrich_row(
    received: Received, cfg: EnrichConfig, etl_tstamp: datetime | None = None
) -> list[str]:
    """The enriched TSV row, untyped: what ``enrich`` types with ``parse_fields``, and what the
    collector's block path types column by column (``columnar.parse_rows``)."""
    p = received.payload
    row = [""] * len(FIELDS)
    for param, value in p.items():  # a payload holds a few of the parameters: look them up
        at = _DIRECT_AT.get(param)
        if at is not None and value:
            row[at] = value
    e = p.get("e", "")
    if e not in _EVENTS:
        raise FieldError(f"e: unknown event type {e!r}")
    row[_INDEX["event"]], event_name = _EVENTS[e]
    if event_name:
        row[_INDEX["event_vendor"]] = "com.snowplowanalytics.snowplow"
        row[_INDEX["event_name"]] = event_name
        row[_INDEX["event_format"]] = "jsonschema"
        row[_INDEX["event_version"]] = "1-0-0"
    etl = etl_tstamp or utcnow()
    row[_INDEX["collector_tstamp"]] = _fmt(received.collector_tstamp)
    row[_INDEX["etl_tstamp"]] = _fmt(etl)
    row[_INDEX["v_collector"]], row[_INDEX["v_etl"]] = V_COLLECTOR, V_ETL
    try:
        created = _ms(p["dtm"]) if p.get("dtm") else None
        sent = _ms(p["stm"]) if p.get("stm") else None
        true = _ms(p["ttm"]) if p.get("ttm") else None
    except (ValueError, OverflowError) as exc:
        raise FieldError(f"dtm/stm/ttm: not a millisecond timestamp ({exc})") from exc
    for name, ts in (("dvce_created_tstamp", created), ("dvce_sent_tstamp", sent),
                     ("true_tstamp", true)):  # fmt: skip
        if ts is not None:
            row[_INDEX[name]] = _fmt(ts)
    # Snowplow's derived_tstamp: the collector time, corrected by how long the device held it
    derived = true or (
        received.collector_tstamp - (sent - created)
        if created and sent
        else received.collector_tstamp
    )
    row[_INDEX["derived_tstamp"]] = _fmt(derived)
    for param, w, h in (("res", "dvce_screenwidth", "dvce_screenheight"),
                        ("vp", "br_viewwidth", "br_viewheight"),
                        ("ds", "doc_width", "doc_height")):  # fmt: skip
        if "x" in p.get(param, ""):
            row[_INDEX[w]], row[_INDEX[h]] = p[param].split("x", 1)
    useragent = p.get("ua") or received.useragent
    row[_INDEX["useragent"]] = useragent
    row[_INDEX["user_ipaddress"]] = p.get("ip") or received.ip
    row[_INDEX["network_userid"]] = p.get("tnuid") or p.get("nuid") or received.network_userid
    _page_and_referrer(row, p, cfg)
    _self_describing(row, p, e, useragent, cfg)
    return row


def _page_and_referrer(row: list[str], p: dict[str, str], cfg: EnrichConfig) -> None:
    query: dict[str, str] = {}
    page_host = ""
    if p.get("url"):
        row[_INDEX["page_url"]] = p["url"]
        query = _set_url(row, "page", p["url"])
        page_host = row[_INDEX["page_urlhost"]]
    if cfg.campaign:
        for param, name in _UTM.items():
            if query.get(param):
                row[_INDEX[name]] = query[param]
        for param, network in _CLICK_IDS.items():
            if query.get(param):
                row[_INDEX["mkt_clickid"]], row[_INDEX["mkt_network"]] = query[param], network
                break
    if not p.get("refr"):
        return
    row[_INDEX["page_referrer"]] = p["refr"]
    refr_query = _set_url(row, "refr", p["refr"])
    host = row[_INDEX["refr_urlhost"]]
    if not cfg.classify_referrer:
        return
    if host and host == page_host:
        row[_INDEX["refr_medium"]] = "internal"
    elif host in _SEARCH:
        source, term = _SEARCH[host]
        row[_INDEX["refr_medium"]], row[_INDEX["refr_source"]] = "search", source
        row[_INDEX["refr_term"]] = refr_query.get(term, "")
    elif host in _SOCIAL:
        row[_INDEX["refr_medium"]], row[_INDEX["refr_source"]] = "social", _SOCIAL[host]
    elif host in _EMAIL:
        row[_INDEX["refr_medium"]], row[_INDEX["refr_source"]] = "email", _EMAIL[host]
    elif host:
        row[_INDEX["refr_medium"]] = "unknown"


def _self_describing(
    row: list[str], p: dict[str, str], e: str, useragent: str, cfg: EnrichConfig
) -> None:
    try:
        contexts = p.get("co") or (_b64(p["cx"]) if p.get("cx") else "")
        unstruct = p.get("ue_pr") or (_b64(p["ue_px"]) if p.get("ue_px") else "")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise FieldError(f"cx/ue_px: not base64url-encoded UTF-8 JSON ({exc})") from exc
    if contexts:
        row[_INDEX["contexts"]] = contexts
    if e == "ue":
        if not unstruct:
            raise FieldError("ue_pr: an unstructured event (e=ue) needs ue_pr or ue_px")
        row[_INDEX["unstruct_event"]] = unstruct
        try:
            schema = orjson.loads(unstruct)["data"]["schema"]
            if not isinstance(schema, str):
                raise TypeError(f"schema is {type(schema).__name__}, not an Iglu URI")
            vendor, name, fmt, version = schema.removeprefix("iglu:").split("/")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FieldError(f"ue_pr: not a self-describing event ({exc})") from exc
        for field_name, value in (("event_vendor", vendor), ("event_name", name),
                                  ("event_format", fmt), ("event_version", version)):  # fmt: skip
            row[_INDEX[field_name]] = value
    derived = []
    if cfg.parse_useragent and useragent:
        derived.append({"schema": _UA_CONTEXT, "data": _useragent_context(useragent)})
    if cfg.detect_bots:
        bot = _is_bot(useragent)
        derived.append({"schema": _ROBOTS, "data": {
            "spiderOrRobot": bot, "category": "SPIDER_OR_ROBOT" if bot else "BROWSER",
            "reason": "FAILED_UA_INCLUDE" if bot else "PASSED_ALL",
            "primaryImpact": "UNKNOWN" if bot else "NONE"}})  # fmt: skip
    if derived:
        row[_INDEX["derived_contexts"]] = orjson.dumps(
            {"schema": _CONTEXTS, "data": derived}
        ).decode()


def enrich_or_fail(received: Received, cfg: EnrichConfig, source: str = "") -> Event | FailedEvent:
    """``enrich`` that never raises: a payload that cannot be an event is kept with its reason."""
    try:
        row = enrich_row(received, cfg)
    except FieldError as exc:
        return refused(received, cfg, exc, source)
    return typed_or_fail(row, received, cfg, source)


def typed_or_fail(
    row: list[str], received: Received, cfg: EnrichConfig, source: str = ""
) -> Event | FailedEvent:
    """An enriched row typed by ``parse_fields`` and checked, or the failed event saying why."""
    try:
        event = parse_fields(row)
    except FieldError as exc:
        return refused(received, cfg, exc, source)
    result = check_required(event, "", source)
    if isinstance(result, FailedEvent):  # the raw input only when it is needed
        return refused(received, cfg, FieldError(result.message), source, result.error_type)
    return result


def refused(
    received: Received,
    cfg: EnrichConfig,
    exc: FieldError,
    source: str = "",
    error_type: ErrorType | None = None,
) -> FailedEvent:
    """The failed event for a payload: the raw input as the spool holds it (protected)."""
    raw = orjson.dumps({"payload": received.payload,
                        "collector_tstamp": _fmt(received.collector_tstamp)}).decode()  # fmt: skip
    if error_type is None:
        invalid_json = isinstance(exc.__cause__, orjson.JSONDecodeError)
        error_type = ErrorType.INVALID_JSON if invalid_json else ErrorType.INVALID_PAYLOAD
    return FailedEvent(raw, error_type, str(exc), source)
