"""Server-rendered shell pages, languages, headers and the JSON error shape."""

import warnings

from tests.conftest import login_form, register_user


async def test_home_is_english_by_default_and_korean_by_accept_language(client):
    en = await client.get("/")
    assert en.status_code == 200
    assert 'lang="en"' in en.text and "Home health checks" in en.text
    ko = await client.get("/", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"})
    assert 'lang="ko"' in ko.text and "휴대폰으로 하는 가정 건강 체크" in ko.text


async def test_language_switch_sets_cookie_and_wins_over_accept_language(client):
    page = await client.get("/")
    from tests.conftest import csrf_from

    response = await client.post("/lang", data={"lang": "ko", "next": "/login",
                                                "_csrf_token": csrf_from(page.text)},
                                 follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/login"
    again = await client.get("/login", headers={"Accept-Language": "en"})
    assert "로그인" in again.text


async def test_language_switch_refuses_offsite_redirect(client):
    from tests.conftest import csrf_from

    page = await client.get("/")
    response = await client.post("/lang", data={"lang": "en", "next": "//evil.example/",
                                                "_csrf_token": csrf_from(page.text)},
                                 follow_redirects=False)
    assert response.headers["location"] == "/"


async def test_security_headers_on_pages(client):
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "camera=(self)" in response.headers["permissions-policy"]
    assert response.headers["referrer-policy"]


async def test_pages_needing_login_redirect_to_login(client):
    response = await client.get("/settings", follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/login?next=/settings"


async def test_api_errors_are_json_with_a_message(client):
    missing = await client.get("/api/v1/nope")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error"}
    anonymous = await client.get("/api/v1/me")
    assert anonymous.status_code == 401 and anonymous.json()["error"]
    headers = await register_user(client, "json@example.org")
    bad = await client.post("/api/v1/checks/brain", headers=headers,
                            files={"file": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")})
    assert bad.status_code == 404 and "Unknown kind of check" in bad.json()["error"]
    malformed = await client.post("/api/v1/auth/token", content=b"{not json",
                                  headers={"content-type": "application/json"})
    assert 400 <= malformed.status_code < 500 and malformed.json()["error"]


async def test_openapi_schema_lists_the_contract_routes(client):
    schema = (await client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/api/v1/auth/register", "/api/v1/auth/token", "/api/v1/checks/{kind}",
                 "/api/v1/checks/{check_id}"):
        assert path in paths, path
    assert "/login" not in paths


async def test_service_worker_is_served_from_root_scope(client):
    response = await client.get("/sw.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "caches.match(\"/offline\")" in response.text
    offline = await client.get("/offline")
    assert offline.status_code == 200 and 'id="offline-message"' in offline.text


async def test_service_errors_reach_a_korean_user_in_korean(client):
    """Not-found and similar errors from the service layer follow the user's language on the
    JSON API (Accept-Language) and on the HTML error page (the language cookie), as refusals do."""
    headers = await register_user(client, "ko-404@example.org")
    english = await client.get("/api/v1/checks/999999", headers=headers)
    assert english.status_code == 404 and english.json() == {"error": "This check does not exist."}
    korean = await client.get("/api/v1/checks/999999", headers={**headers, "accept-language": "ko"})
    assert korean.status_code == 404 and korean.json() == {"error": "해당 검사가 없습니다."}
    huge = await client.post("/api/v1/checks/skin", headers={**headers, "accept-language": "ko"},
                             files={"file": ("big.jpg", b"\xff" * (13 * 1024 * 1024), "image/jpeg")})
    assert huge.status_code == 413 and huge.json()["error"].startswith("올린 파일이 너무 큽니다")

    await login_form(client, "ko-404@example.org")
    client.cookies.set("lang", "ko")
    page = await client.get("/checks/999999")
    assert page.status_code == 404 and "해당 검사가 없습니다." in page.text
    assert "This check does not exist." not in page.text
    assert 'href="/settings"' in page.text and 'href="/login"' not in page.text  # still signed in


async def test_static_files_skip_the_user_and_language_middleware_the_litestar_3_way(
    client, monkeypatch
):
    # exclude_path_pattern warned that Litestar 3 would run these middlewares on static files
    from backend.api import web

    headers = await register_user(client, "static-files@example.org")
    token_lookup = web.accounts.user_for_token
    looked_up = []

    async def spy(token):
        looked_up.append(token)
        return await token_lookup(token)

    monkeypatch.setattr(web.accounts, "user_for_token", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        response = await client.get("/static/js/community.js", headers=headers)
    assert response.status_code == 200
    assert not looked_up
    assert (await client.get("/", headers=headers)).status_code == 200
    assert len(looked_up) == 1  # pages do resolve the caller
