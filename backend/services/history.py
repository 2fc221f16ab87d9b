"""The health history: checks and vitals readings of one member, newest first, as the history
page and the home page's "Recent" list show them."""

from __future__ import annotations

from typing import Any

from backend.i18n import N_
from backend.i18n import gettext as _
from backend.inference.dispatch import KINDS
from backend.services import result_cards
from backend.services.checks import result_of
from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.vitals import Vital

VITAL_NAMES = {
    "blood_pressure": N_("Blood pressure"), "glucose": N_("Glucose"), "weight": N_("Weight"),
    "height": N_("Height"), "heart_rate": N_("Heart rate"),
}
FILTERS = (("all", N_("All")), ("ecg", N_("ECG")), ("skin", N_("Skin")), ("ear", N_("Ear")),
           ("vitals", N_("Vitals")))


def _check_entry(check: Check) -> dict[str, Any]:
    result = result_of(check)
    summary = ""
    if check.status == "done":
        summary = result_cards.label_name(check.kind, str(result.get("label", "")))
        if detail := result_cards.headline_detail(result):
            summary = f"{summary} · {detail}"
    return {
        "type": "check", "when": check.created_at, "kind": check.kind,
        "title": _(result_cards.KIND_TITLES.get(check.kind, N_("Check"))),
        "status": check.status, "href": f"/checks/{check.id}",
        "summary": summary,
        "urgency": result.get("urgency"),
        "urgency_name": result_cards.urgency_name(result.get("urgency")),
    }


def _vital_entry(v: Vital) -> dict[str, Any]:
    value = f"{v.value:g}/{v.value2:g}" if v.value2 is not None else f"{v.value:g}"
    return {
        "type": "vital", "when": v.measured_at, "kind": "vitals",
        "title": _(VITAL_NAMES.get(v.type, v.type)), "status": "done",
        "href": f"/vitals?type={v.type}", "summary": f"{value} {v.unit}",
        "urgency": None, "urgency_name": "",
    }


PAGE_SIZE = 50
MAX_PAGES = 100  # 5,000 entries back; a page further than that would read too many rows


async def timeline(
    user: User, kind: str = "all", limit: int = PAGE_SIZE, offset: int = 0
) -> list[dict[str, Any]]:
    """Entries offset..offset+limit, newest first: checks (of one kind, or all) and vitals
    readings. Each source is read up to offset+limit rows, enough for any merge of the two."""
    wanted = offset + limit
    entries: list[dict[str, Any]] = []
    if kind != "vitals":
        query = Check.objects().where(Check.owner == user.id)
        if kind in KINDS:
            query = query.where(Check.kind == kind)
        checks = await query.order_by(Check.created_at, ascending=False).limit(wanted)
        entries += [_check_entry(c) for c in checks]
    if kind in ("all", "vitals"):
        vitals = await Vital.objects().where(Vital.owner == user.id).order_by(
            Vital.measured_at, ascending=False).limit(wanted)
        entries += [_vital_entry(v) for v in vitals]
    entries.sort(key=lambda e: e["when"].timestamp() if e["when"] else 0.0, reverse=True)
    return entries[offset:wanted]


async def timeline_page(user: User, kind: str, page: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of the history (1 = newest) and whether an older page follows."""
    page = min(max(page, 1), MAX_PAGES)
    rows = await timeline(user, kind, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE and page < MAX_PAGES
