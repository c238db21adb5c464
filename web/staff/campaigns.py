"""Campaigns in the staff app: list, create, edit, schedule/open/close/archive, links,
QR codes, a printable poster and live progress.

Facilitators and admins only (`CAMPAIGN_ROLES`); everyone else gets the audited
403 of `require_role`. Every change is written with its audit entry in one
transaction (`storage.campaigns`), forms carry the CSRF token the staff
middleware checks, and a refused form is shown again with what was typed and
a message. Titles and invitations are facilitator text shown through
autoescaping templates; nothing is marked safe. Progress holds counts only,
suppressed as `surveys.progress` says, and no link to the review queue.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import segno
from aiohttp import web
from multidict import MultiDictProxy

from bot.catalogue import Catalogue
from storage import campaigns as store
from storage.campaign_progress import progress_counts
from storage.clock import utcnow
from storage.repository import Repository, UnknownCampaign
from storage.review import read
from surveys.audience import CHANNELS, KEY_STAGES, Audience, AudienceError
from surveys.campaigns import (
    ACTIONS,
    CODE_MAX,
    FIELD_LABELS,
    MAX_MESSAGE,
    STATE_LABELS,
    TRANSITIONS,
    CampaignError,
    CampaignPlan,
    format_london,
    input_london,
    parse_london,
)
from surveys.progress import build_progress
from web.keys import SETTINGS
from web.staff.alerts import staff_base_url
from web.staff.auth import (
    client_address,
    current_user,
    register_nav,
    render,
    repository_of,
    require_role,
)

log = logging.getLogger("besafe.web.staff.campaigns")

CAMPAIGN_ROLES: tuple[str, ...] = ("facilitator", "admin")
QR_KINDS = ("web", "telegram")
QR_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
_CODE_IN_URL = re.compile(r"[A-Za-z0-9_-]{1,100}")
_SURVEY_CHOICE = re.compile(r"(?P<id>[A-Za-z0-9_]{1,100}):(?P<version>[0-9]{1,6})")
PROGRESS_REFRESH_SECONDS = 10
PROGRESS_CACHE_SECONDS = 3.0
PROGRESS_CACHE = web.AppKey("campaign_progress_cache", dict)


def setup_campaigns(app: web.Application) -> None:
    router = app.router
    router.add_get("/staff/campaigns", campaigns_index, name="staff-campaigns")
    router.add_post("/staff/campaigns", campaign_create, name="staff-campaign-create")
    router.add_get("/staff/campaigns/new", campaign_new, name="staff-campaign-new")
    router.add_get("/staff/campaigns/{code}", campaign_page, name="staff-campaign")
    router.add_get("/staff/campaigns/{code}/edit", campaign_edit_form, name="staff-campaign-edit")
    router.add_post("/staff/campaigns/{code}/edit", campaign_edit, name="staff-campaign-save")
    router.add_get(
        "/staff/campaigns/{code}/progress.json", campaign_progress, name="staff-campaign-progress"
    )
    router.add_get("/staff/campaigns/{code}/poster", campaign_poster, name="staff-campaign-poster")
    router.add_get(
        "/staff/campaigns/{code}/qr/{kind}.{format}", campaign_qr, name="staff-campaign-qr"
    )
    router.add_post(
        "/staff/campaigns/{code}/{action}", campaign_action, name="staff-campaign-action"
    )
    register_nav(app, "Campaigns", "/staff/campaigns", CAMPAIGN_ROLES)
    app[PROGRESS_CACHE] = {}


def campaign_sweep(repository: Repository, catalogue: Catalogue) -> list[tuple[str, str, str]]:
    """Apply due opens and closes, and refresh the offers when anything changed (a job)."""
    made = store.apply_due_transitions(repository, utcnow())
    if made:
        catalogue.refresh(utcnow())
    return made


# ---------------------------------------------------------------- helpers


def _code(request: web.Request) -> str:
    code = request.match_info.get("code", "")
    if not _CODE_IN_URL.fullmatch(code):
        raise web.HTTPNotFound(text="No campaign has this code.")
    return code


async def _campaign(request: web.Request, code: str) -> store.Campaign:
    try:
        return await asyncio.to_thread(store.get_campaign, repository_of(request), code)
    except UnknownCampaign:
        raise web.HTTPNotFound(text="No campaign has this code.") from None


def _actor(request: web.Request) -> store.Actor:
    return store.Actor(current_user(request).id, client_address(request))


async def _refresh_offers(request: web.Request) -> None:
    """Offer (or stop offering) a campaign to young people now, not at the next refresh."""
    from web.app import CATALOGUE

    catalogue = request.app.get(CATALOGUE)
    if catalogue is not None:
        await asyncio.to_thread(catalogue.refresh, utcnow())


def web_link(settings: Any, code: str) -> str:
    base = (settings.public_base_url or staff_base_url(settings)).rstrip("/")
    return f"{base}/?c={quote(code, safe='')}"


def telegram_link(settings: Any, code: str) -> str | None:
    username = settings.telegram_bot_username.lstrip("@")
    if not username:
        return None
    return f"https://t.me/{username}?start={quote(code, safe='')}"


def qr_bytes(data: str, format_: str) -> bytes:
    """A QR code for `data` as PNG or SVG (segno writes PNG without Pillow)."""
    buffer = io.BytesIO()
    qr = segno.make(data, error="m")
    if format_ == "png":
        qr.save(buffer, kind="png", scale=10, border=4)
    else:
        qr.save(buffer, kind="svg", scale=10, border=4, xmldecl=True, title="Be-Safe join code")
    return buffer.getvalue()


def _links(request: web.Request, code: str) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {"web_link": web_link(settings, code), "telegram_link": telegram_link(settings, code)}


def _describe(campaign: store.Campaign) -> dict[str, Any]:
    plan = campaign.plan
    return {
        "campaign": campaign,
        "plan": plan,
        "state_label": STATE_LABELS.get(campaign.status, campaign.status),
        "opens": format_london(plan.opens_at),
        "closes": format_london(plan.closes_at, empty="no closing time"),
        "reminders": [format_london(t) for t in plan.reminder_times],
        "audience": plan.audience.describe(),
        "actions": [
            (action, target)
            for (current, target), action in TRANSITIONS.items()
            if current == campaign.status
        ],
    }


# ---------------------------------------------------------------- forms


def _form_values(form: MultiDictProxy[Any] | None, plan: CampaignPlan | None) -> dict[str, Any]:
    """What the form shows: what was typed (after a refusal), else the stored plan."""
    if form is not None:
        return {
            "code": str(form.get("code", "")),
            "title": str(form.get("title", "")),
            "survey": str(form.get("survey", "")),
            "opens": str(form.get("opens", "")),
            "closes": str(form.get("closes", "")),
            "key_stages": [str(v) for v in form.getall("key_stages", [])],
            "years": str(form.get("years", "")),
            "schools": str(form.get("schools", "")),
            "areas": str(form.get("areas", "")),
            "channels": [str(v) for v in form.getall("channels", [])],
            "invitation_text": str(form.get("invitation_text", "")),
            "reminder_text": str(form.get("reminder_text", "")),
            "reminder_times": str(form.get("reminder_times", "")),
            "send_spread_minutes": str(form.get("send_spread_minutes", "0")),
            "target_responses": str(form.get("target_responses", "")),
        }
    if plan is None:
        return {"send_spread_minutes": "0", "key_stages": [], "channels": []}
    audience = plan.audience
    return {
        "code": plan.code,
        "title": plan.title,
        "survey": f"{plan.survey_id}:{plan.survey_version}",
        "opens": input_london(plan.opens_at),
        "closes": input_london(plan.closes_at),
        "key_stages": sorted(audience.key_stages),
        "years": ", ".join(str(y) for y in sorted(audience.years)),
        "schools": ", ".join(sorted(audience.schools)),
        "areas": ", ".join(sorted(audience.areas)),
        "channels": sorted(audience.channels),
        "invitation_text": plan.invitation_text or "",
        "reminder_text": plan.reminder_text or "",
        "reminder_times": "\n".join(input_london(t) for t in plan.reminder_times),
        "send_spread_minutes": str(plan.send_spread_minutes),
        "target_responses": "" if plan.target_responses is None else str(plan.target_responses),
    }


# Form inputs -> the plan fields they make.
_FORM_FIELDS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("title",), ("title",)),
    (("survey",), ("survey_id", "survey_version")),
    (("opens",), ("opens_at",)),
    (("closes",), ("closes_at",)),
    (("key_stages", "years", "schools", "areas", "channels"), ("audience",)),
    (("invitation_text",), ("invitation_text",)),
    (("reminder_text",), ("reminder_text",)),
    (("reminder_times",), ("reminder_times",)),
    (("send_spread_minutes",), ("send_spread_minutes",)),
    (("target_responses",), ("target_responses",)),
)


def _list(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


def _whole(text: str, what: str) -> int | None:
    cleaned = text.strip()
    if not cleaned:
        return None
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > 9:
        raise CampaignError(f"the {what} must be a whole number")
    return int(cleaned)


def plan_from_form(values: dict[str, Any], *, code: str | None = None) -> CampaignPlan:
    """A plan from the form's fields; CampaignError (or AudienceError) naming the field."""
    survey = _SURVEY_CHOICE.fullmatch(values["survey"])
    if survey is None:
        raise CampaignError("choose the survey the campaign runs")
    opens = values["opens"].strip()
    opens_at = parse_london(opens, "opening time") if opens else utcnow().replace(microsecond=0)
    closes = values["closes"].strip()
    years: list[int] = []
    for part in _list(values["years"]):
        number = _whole(part.lower().removeprefix("year").strip(), "school year")
        if number is not None:
            years.append(number)
    audience = Audience.build(
        key_stages=values["key_stages"],
        years=years,
        schools=_list(values["schools"]),
        areas=_list(values["areas"]),
        channels=values["channels"],
    )
    return CampaignPlan(
        code=code if code is not None else values["code"].strip(),
        title=values["title"],
        survey_id=survey["id"],
        survey_version=int(survey["version"]),
        opens_at=opens_at,
        closes_at=parse_london(closes, "closing time") if closes else None,
        audience=audience,
        invitation_text=values["invitation_text"],
        reminder_text=values["reminder_text"],
        reminder_times=tuple(
            parse_london(line, "reminder time")
            for line in values["reminder_times"].splitlines()
            if line.strip()
        ),
        send_spread_minutes=_whole(values["send_spread_minutes"], "send spread") or 0,
        target_responses=_whole(values["target_responses"], "target"),
    )


async def _form_page(
    request: web.Request,
    values: dict[str, Any],
    *,
    campaign: store.Campaign | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    surveys = await asyncio.to_thread(store.stored_surveys, repository_of(request))
    return render(
        request,
        "staff/campaign_form.html",
        {
            "values": values,
            "campaign": campaign,
            "surveys": surveys,
            "error": error,
            "key_stages": KEY_STAGES,
            "channels": CHANNELS,
            "code_max": CODE_MAX,
            "max_message": MAX_MESSAGE,
            "editable": None
            if campaign is None
            else {name for name in FIELD_LABELS if _editable(campaign.status, name)},
        },
        status=status,
    )


def _editable(state: str, name: str) -> bool:
    from surveys.campaigns import EDITABLE

    return name in EDITABLE.get(state, frozenset())


# ---------------------------------------------------------------- pages


@require_role(*CAMPAIGN_ROLES)
async def campaigns_index(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(store.list_campaigns, repository_of(request))
    rows = [_describe(campaign) for campaign in found]
    return render(request, "staff/campaigns.html", {"rows": rows})


@require_role(*CAMPAIGN_ROLES)
async def campaign_new(request: web.Request) -> web.Response:
    return await _form_page(request, _form_values(None, None))


@require_role(*CAMPAIGN_ROLES)
async def campaign_create(request: web.Request) -> web.Response:
    form = await request.post()
    values = _form_values(form, None)
    try:
        plan = plan_from_form(values)
        created = await asyncio.to_thread(
            store.create_campaign, repository_of(request), plan, _actor(request)
        )
    except (CampaignError, AudienceError) as error:
        return await _form_page(request, values, error=_sentence(error), status=400)
    log.info("campaign created", extra={"code": created.code, "by": current_user(request).id})
    raise web.HTTPSeeOther(f"/staff/campaigns/{quote(created.code, safe='')}")


@require_role(*CAMPAIGN_ROLES)
async def campaign_edit_form(request: web.Request) -> web.Response:
    campaign = await _campaign(request, _code(request))
    return await _form_page(request, _form_values(None, campaign.plan), campaign=campaign)


@require_role(*CAMPAIGN_ROLES)
async def campaign_edit(request: web.Request) -> web.Response:
    code = _code(request)
    campaign = await _campaign(request, code)
    form = await request.post()
    values = _form_values(form, None)
    # A field not sent (the form disables those the state does not allow) keeps its stored
    # value exactly, not re-read from its minute-precision text.
    stored = _form_values(None, campaign.plan)
    kept: dict[str, Any] = {}
    for names, fields in _FORM_FIELDS:
        if any(name in form for name in names):
            continue
        kept.update({f: getattr(campaign.plan, f) for f in fields})
        for name in names:
            values[name] = [] if name in ("key_stages", "channels") else ""
    if "survey_id" in kept:
        values["survey"] = f"{campaign.plan.survey_id}:{campaign.plan.survey_version}"
    try:
        plan = replace(plan_from_form(values, code=code), **kept)
        await asyncio.to_thread(
            store.edit_campaign, repository_of(request), code, plan, _actor(request)
        )
    except (CampaignError, AudienceError) as error:
        for names, fields in _FORM_FIELDS:
            if fields[0] in kept:
                values.update({name: stored[name] for name in names})
        return await _form_page(
            request, values, campaign=campaign, error=_sentence(error), status=400
        )
    await _refresh_offers(request)
    raise web.HTTPSeeOther(f"/staff/campaigns/{quote(code, safe='')}")


@require_role(*CAMPAIGN_ROLES)
async def campaign_action(request: web.Request) -> web.Response:
    code = _code(request)
    action = request.match_info.get("action", "")
    target = ACTIONS.get(action)
    if target is None:
        raise web.HTTPNotFound()
    try:
        await asyncio.to_thread(
            store.transition_campaign, repository_of(request), code, target, _actor(request)
        )
    except UnknownCampaign:
        raise web.HTTPNotFound(text="No campaign has this code.") from None
    except CampaignError as error:
        campaign = await _campaign(request, code)
        return await _campaign_view(request, campaign, error=_sentence(error), status=409)
    await _refresh_offers(request)
    log.info(
        "campaign moved",
        extra={"code": code, "to": target, "by": current_user(request).id},
    )
    raise web.HTTPSeeOther(f"/staff/campaigns/{quote(code, safe='')}")


def _sentence(error: Exception) -> str:
    text = str(error)
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


async def _progress(request: web.Request, code: str) -> dict[str, Any]:
    """The figures, counted at most every PROGRESS_CACHE_SECONDS per campaign: every open
    campaign page polls, and a large campaign takes a fraction of a second to count."""
    cache = request.app[PROGRESS_CACHE]
    now = time.monotonic()
    cached = cache.get(code)
    if cached is not None and now - cached[0] < PROGRESS_CACHE_SECONDS:
        return cached[1]
    settings = request.app[SETTINGS]
    try:
        counts = await asyncio.to_thread(
            read, repository_of(request), lambda c: progress_counts(c, code)
        )
    except UnknownCampaign:
        raise web.HTTPNotFound(text="No campaign has this code.") from None
    shown = build_progress(
        counts,
        threshold=settings.report_suppression_threshold,
        rounding=settings.report_rounding,
    )
    if len(cache) > 100:
        cache.clear()
    cache[code] = (now, shown)
    return shown


async def _campaign_view(
    request: web.Request,
    campaign: store.Campaign,
    *,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    progress = await _progress(request, campaign.code)
    return render(
        request,
        "staff/campaign.html",
        {
            **_describe(campaign),
            **_links(request, campaign.code),
            "progress": progress,
            "refresh_seconds": PROGRESS_REFRESH_SECONDS,
            "error": error,
        },
        status=status,
    )


@require_role(*CAMPAIGN_ROLES)
async def campaign_page(request: web.Request) -> web.Response:
    campaign = await _campaign(request, _code(request))
    return await _campaign_view(request, campaign)


@require_role(*CAMPAIGN_ROLES)
async def campaign_progress(request: web.Request) -> web.Response:
    """The live progress figures as JSON (polled by campaigns.js): counts only."""
    progress = await _progress(request, _code(request))
    return web.json_response(progress, headers={"Cache-Control": "no-store"})


@require_role(*CAMPAIGN_ROLES)
async def campaign_qr(request: web.Request) -> web.Response:
    code = _code(request)
    kind = request.match_info.get("kind", "")
    format_ = request.match_info.get("format", "")
    if kind not in QR_KINDS or format_ not in QR_FORMATS:
        raise web.HTTPNotFound()
    campaign = await _campaign(request, code)
    links = _links(request, campaign.code)
    data = links["web_link"] if kind == "web" else links["telegram_link"]
    if data is None:
        raise web.HTTPNotFound(
            text="No Telegram link: set BESAFE_TELEGRAM_BOT_USERNAME to the bot's username."
        )
    body = await asyncio.to_thread(qr_bytes, data, format_)
    download = "download" in request.query
    headers = {"Content-Type": QR_FORMATS[format_], "Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = (
            f'attachment; filename="be-safe-{campaign.code}-{kind}.{format_}"'
        )
    return web.Response(body=body, headers=headers)


@require_role(*CAMPAIGN_ROLES)
async def campaign_poster(request: web.Request) -> web.Response:
    campaign = await _campaign(request, _code(request))
    return render(
        request,
        "staff/campaign_poster.html",
        {**_describe(campaign), **_links(request, campaign.code)},
    )
