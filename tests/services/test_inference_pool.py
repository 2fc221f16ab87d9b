"""The bounded inference pool: blocking work off the event loop, refusal when full."""

import asyncio
import threading
import time

import pytest

from backend.services.inference_pool import InferenceBusyError, InferencePool


def blocking(gate: threading.Event) -> str:
    gate.wait(10)
    return "done"


async def test_full_pool_refuses_at_once_and_loop_stays_free():
    pool = InferencePool(workers=1, queue_size=1)
    gate = threading.Event()
    running = [asyncio.create_task(pool.run("skin", blocking, gate)) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert pool.admitted == 2

    started = time.perf_counter()
    with pytest.raises(InferenceBusyError) as refused:
        await pool.run("skin", blocking, gate)
    assert time.perf_counter() - started < 0.5  # refused, not queued
    assert refused.value.status_code == 503 and refused.value.retry_after_s >= 1

    # The event loop keeps serving other work while both jobs block their threads.
    ticks = 0
    for _ in range(10):
        await asyncio.sleep(0.001)
        ticks += 1
    assert ticks == 10 and not any(t.done() for t in running)

    gate.set()
    assert await asyncio.gather(*running) == ["done", "done"]
    assert pool.admitted == 0
    assert pool.latency_percentiles()["skin"]["n"] == 2
    pool.shutdown()


async def test_api_answers_503_with_retry_after_when_inference_is_saturated(sqlite_settings):
    from dataclasses import replace

    from litestar.testing import AsyncTestClient

    from backend.app import create_app
    from tests.conftest import register_user

    app = create_app(replace(sqlite_settings, inference_workers=1, inference_queue=0))
    async with AsyncTestClient(app=app) as client:
        headers = await register_user(client, "busy@example.org")
        gate = threading.Event()
        occupying = asyncio.create_task(app.state.pool.run("ecg", blocking, gate))
        await asyncio.sleep(0.05)
        try:
            response = await client.post("/api/v1/checks/skin", headers=headers,
                                         files={"file": ("a.jpg", b"\xff\xd8\xff\xe0", "image/jpeg")})
            assert response.status_code == 503
            assert int(response.headers["retry-after"]) >= 1
            assert "busy" in response.json()["error"]
            # Pages and other APIs are unaffected while inference is saturated.
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
        finally:
            gate.set()
            await occupying
