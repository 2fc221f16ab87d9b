"""A reading acknowledged to the client survives the server being killed right after."""

import httpx

from tests.live_server import LiveServer


def test_vital_acknowledged_then_server_killed_is_still_there(tmp_path):
    server = LiveServer(tmp_path)
    server.start()
    try:
        headers = server.register("durable@example.org")
        acknowledged = []
        for systolic in (118, 121, 135):
            response = httpx.post(server.url + "/api/v1/vitals", headers=headers, timeout=30, json={
                "type": "blood_pressure", "systolic": systolic, "diastolic": 78, "unit": "mmHg",
                "measured_at": "2026-11-20T08:00:00+09:00"})
            assert response.status_code == 201, response.text
            acknowledged.append(systolic)
        server.kill()  # SIGKILL straight after the last acknowledgement

        server.start()
        listed = httpx.get(server.url + "/api/v1/vitals", params={"type": "blood_pressure"},
                           headers=headers, timeout=30)
        assert listed.status_code == 200
        body = listed.json()
        rows = body if isinstance(body, list) else body.get("items", body.get("vitals", []))
        stored = sorted(int(r.get("systolic") or r.get("value")) for r in rows)
        assert stored == sorted(acknowledged)
    finally:
        server.stop()
