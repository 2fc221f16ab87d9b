"""The health history timeline: checks and readings of one member, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.services import history
from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.vitals import Vital

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def test_timeline_merges_filters_and_keeps_to_its_owner(client, make_user):
    await make_user("own@example.org")
    await make_user("other@example.org")
    own = await User.objects().where(User.email == "own@example.org").first()
    other = await User.objects().where(User.email == "other@example.org").first()
    await Check(owner=own.id, kind="skin", status="done", created_at=T0 + timedelta(hours=1),
                result={"kind": "skin", "label": "nv", "urgency": "routine"}).save()
    await Check(owner=own.id, kind="ear", status="failed", created_at=T0 + timedelta(hours=3),
                error="not an eardrum").save()
    await Vital(owner=own.id, type="blood_pressure", value=128, value2=82, unit="mmHg",
                measured_at=T0 + timedelta(hours=2)).save()
    await Vital(owner=other.id, type="weight", value=80, unit="kg", measured_at=T0).save()

    entries = await history.timeline(own)
    assert [(e["kind"], e["status"]) for e in entries] == [
        ("ear", "failed"), ("vitals", "done"), ("skin", "done")]
    assert entries[1]["summary"] == "128/82 mmHg" and entries[1]["title"] == "Blood pressure"
    assert entries[2]["summary"] == "Mole (melanocytic nevus)" and entries[2]["urgency"] == "routine"
    assert [e["kind"] for e in await history.timeline(own, "skin")] == ["skin"]
    assert [e["kind"] for e in await history.timeline(own, "vitals")] == ["vitals"]
    assert [e["kind"] for e in await history.timeline(own, limit=2)] == ["ear", "vitals"]


async def test_an_ecg_entry_names_the_early_beats_beside_the_rhythm(client, make_user):
    await make_user("beats@example.org")
    user = await User.objects().where(User.email == "beats@example.org").first()
    await Check(owner=user.id, kind="ecg", status="done", created_at=T0,
                result={"kind": "ecg", "label": "sinus_rhythm", "urgency": "routine",
                        "intervals_detail": {"early_beats": 2}}).save()
    (entry,) = await history.timeline(user)
    assert entry["summary"] == "Normal sinus rhythm · with 2 early beats"


async def test_history_pages_go_back_past_the_first_fifty(client, make_user):
    await make_user("long@example.org")
    user = await User.objects().where(User.email == "long@example.org").first()
    for i in range(70):  # 70 readings, then 40 checks, interleaved in time
        await Vital(owner=user.id, type="weight", value=60 + i / 10, unit="kg",
                    measured_at=T0 + timedelta(minutes=2 * i)).save()
    for i in range(40):
        await Check(owner=user.id, kind="ecg", status="done", result={"label": "sinus_rhythm"},
                    created_at=T0 + timedelta(minutes=2 * i + 1)).save()
    first, older = await history.timeline_page(user, "all", 1)
    second, older2 = await history.timeline_page(user, "all", 2)
    third, older3 = await history.timeline_page(user, "all", 3)
    assert (len(first), len(second), len(third)) == (50, 50, 10)
    assert older and older2 and not older3
    everything = first + second + third
    whens = [e["when"] for e in everything]
    assert whens == sorted(whens, reverse=True) and len(set(map(id, everything))) == 110
    assert [e["summary"] for e in everything[-3:]] == ["60.1 kg", "Normal sinus rhythm", "60 kg"]
    assert (await history.timeline_page(user, "ecg", 1))[1] is False  # 40 checks: one page
    assert (await history.timeline_page(user, "all", -5))[0] == first
