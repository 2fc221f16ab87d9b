"""Community board through real HTTP: permissions, likes, moderation visibility, escaping,
shared results, images, pagination and the comment notification hook."""

import asyncio
import io

from PIL import Image

from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.community import Post, PostLike, Report
from tests.conftest import csrf_from, login_form, make_admin

XSS_TITLE = '<script>alert("t")</script>'
XSS_BODY = ('<img src=x onerror=alert(1)> [click](javascript:alert(2)) '
            '"><svg onload=alert(3)> **bold** https://example.org/a?b=1&c=2')

ECG_RESULT = {
    "kind": "ecg", "label": "atrial_fibrillation", "rhythm": "atrial_fibrillation",
    "probabilities": {"atrial_fibrillation": 0.91, "sinus_rhythm": 0.05, "other": 0.04},
    "confidence": 0.91, "urgency": "soon",
    "model": {"name": "ecg_rhythm", "version": "1.2.0", "sha256": "ab" * 32},
    "quality": {"ok": True, "issues": []},
    "intervals": {"hr_bpm": 112, "pr_ms": None, "qrs_ms": 88, "qt_ms": 320, "qtc_ms": 437},
    "leads": ["I", "II"], "explanation": "Irregularly irregular rhythm without P waves.",
    "disclaimer": "CareLens is not a medical device. This is not a diagnosis.",
}


async def user_id(email: str) -> int:
    return (await User.select(User.id).where(User.email == email).first())["id"]


async def make_check(owner_email: str, result: dict = ECG_RESULT, media: str = "") -> int:
    check = Check(owner=await user_id(owner_email), kind=result["kind"], status="done",
                  result=result, model_name=result["model"]["name"],
                  model_version=result["model"]["version"], input_media_type=media)
    await check.save()
    return check.id


async def new_post(client, headers, title="Question", body="Is this normal?", **extra) -> dict:
    response = await client.post("/api/v1/posts", headers=headers,
                                 json={"title": title, "body": body, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_list_read_and_only_the_author_edits(client, make_user):
    ana = await make_user("ana@example.org", name="Ana")
    ben = await make_user("ben@example.org", name="Ben")
    post = await new_post(client, ana)
    assert post["author"]["display_name"] == "Ana" and post["is_mine"]
    listing = await client.get("/api/v1/posts", headers=ben)
    assert [p["id"] for p in listing.json()["items"]] == [post["id"]]
    assert listing.json()["items"][0]["is_mine"] is False

    other_edit = await client.patch(f"/api/v1/posts/{post['id']}", headers=ben,
                                    json={"title": "hacked"})
    assert other_edit.status_code == 403 and "author" in other_edit.json()["error"]
    other_delete = await client.delete(f"/api/v1/posts/{post['id']}", headers=ben)
    assert other_delete.status_code == 403
    assert (await Post.select(Post.title).first())["title"] == "Question"

    own = await client.patch(f"/api/v1/posts/{post['id']}", headers=ana,
                             json={"title": "Better title"})
    assert own.status_code == 200 and own.json()["title"] == "Better title"
    assert own.json()["updated_at"]

    comment = await client.post(f"/api/v1/posts/{post['id']}/comments", headers=ben,
                                json={"body": "Looks fine to me"})
    assert comment.status_code == 201
    cid = comment.json()["id"]
    assert (await client.patch(f"/api/v1/comments/{cid}", headers=ana,
                               json={"body": "x"})).status_code == 403
    assert (await client.delete(f"/api/v1/comments/{cid}", headers=ana)).status_code == 403
    detail = await client.get(f"/api/v1/posts/{post['id']}", headers=ana)
    assert detail.json()["comment_count"] == 1
    assert detail.json()["comments"][0]["body"] == "Looks fine to me"
    assert (await client.delete(f"/api/v1/comments/{cid}", headers=ben)).status_code == 204
    assert (await client.delete(f"/api/v1/posts/{post['id']}", headers=ana)).status_code == 204
    assert (await client.get(f"/api/v1/posts/{post['id']}", headers=ana)).status_code == 404


async def test_anonymous_callers_must_log_in(client):
    assert (await client.get("/api/v1/posts")).status_code == 401
    page = await client.get("/community", follow_redirects=False)
    assert page.status_code in (302, 303) and page.headers["location"].startswith("/login")


async def test_likes_are_one_per_user_and_idempotent(client, make_user):
    ana = await make_user("ana@example.org")
    ben = await make_user("ben@example.org")
    cem = await make_user("cem@example.org")
    post = await new_post(client, ana)
    url = f"/api/v1/posts/{post['id']}/like"
    for _ in range(3):  # setting "liked" again and again keeps one like
        response = await client.post(url, headers=ben, json={"liked": True})
        assert response.json() == {"liked": True, "like_count": 1}
    assert (await client.post(url, headers=cem)).json() == {"liked": True, "like_count": 2}
    assert (await client.post(url, headers=cem)).json() == {"liked": False, "like_count": 1}
    assert (await client.post(url, headers=ben, json={"liked": False})).json()["like_count"] == 0
    assert (await client.post(url, headers=ben, json={"liked": False})).json()["like_count"] == 0
    # Two taps at once (a double tap on a slow phone) still end as one like.
    results = await asyncio.gather(*(client.post(url, headers=ben, json={"liked": True})
                                     for _ in range(4)))
    assert all(r.status_code == 200 for r in results)
    assert await PostLike.count().where(PostLike.post == post["id"]) == 1
    assert (await client.get(f"/api/v1/posts/{post['id']}", headers=ben)).json()["like_count"] == 1


async def test_reported_post_hidden_by_admin_disappears_for_others(client, make_user):
    ana = await make_user("ana@example.org")
    ben = await make_user("ben@example.org")
    admin = await make_admin(client)
    post = await new_post(client, ana, title="Buy miracle pills")
    report = await client.post(f"/api/v1/posts/{post['id']}/report", headers=ben,
                               json={"reason": "spam"})
    assert report.status_code == 201
    await client.post(f"/api/v1/posts/{post['id']}/report", headers=ben, json={"reason": "again"})
    assert await Report.count() == 1  # one open report per member and post

    queue = await client.get("/api/v1/admin/reports", headers=admin)
    assert queue.status_code == 200
    assert [r["post"]["id"] for r in queue.json()] == [post["id"]]
    hide = await client.post(f"/api/v1/admin/posts/{post['id']}/hide", headers=admin,
                             json={"reason": "advertising"})
    assert hide.status_code == 200

    assert (await client.get("/api/v1/posts", headers=ben)).json()["items"] == []
    assert (await client.get(f"/api/v1/posts/{post['id']}", headers=ben)).status_code == 404
    assert (await client.post(f"/api/v1/posts/{post['id']}/comments", headers=ben,
                              json={"body": "hi"})).status_code == 404
    mine = await client.get("/api/v1/posts", headers=ana)
    assert mine.json()["items"][0]["hidden"] is True
    assert mine.json()["items"][0]["hidden_reason"] == "advertising"
    # The report is resolved, so the queue is empty again; restoring shows it to all.
    assert (await client.get("/api/v1/admin/reports", headers=admin)).json() == []
    await client.post(f"/api/v1/admin/posts/{post['id']}/restore", headers=admin,
                      json={"reason": "appeal accepted"})
    assert len((await client.get("/api/v1/posts", headers=ben)).json()["items"]) == 1


async def test_hidden_post_page_shows_author_a_mark_and_others_404(client, make_user):
    await make_user("ana@example.org")
    ben = await make_user("ben@example.org")
    admin = await make_admin(client)
    post = await new_post(client, ben, title="Hidden one")
    await client.post(f"/api/v1/admin/posts/{post['id']}/hide", headers=admin,
                      json={"reason": "off topic"})
    await login_form(client, "ana@example.org")
    assert (await client.get(f"/community/{post['id']}")).status_code == 404
    assert "Hidden one" not in (await client.get("/community")).text
    await client.post("/logout", data={"_csrf_token": csrf_from((await client.get("/")).text)})
    await login_form(client, "ben@example.org")
    page = await client.get(f"/community/{post['id']}")
    assert page.status_code == 200 and "A moderator hid this post" in page.text
    assert "off topic" in page.text


async def test_xss_payloads_render_as_text_in_api_and_pages(client, make_user):
    await make_user("ana@example.org", name='<b onmouseover="x()">Ana</b>')
    ana_headers = await client.post("/api/v1/auth/token", json={
        "email": "ana@example.org", "password": "correct horse battery staple"})
    headers = {"Authorization": f"Bearer {ana_headers.json()['token']}"}
    post = await new_post(client, headers, title=XSS_TITLE, body=XSS_BODY)
    await client.post(f"/api/v1/posts/{post['id']}/comments", headers=headers,
                      json={"body": "<iframe src=javascript:alert(4)></iframe>"})
    html_body = post["body_html"]
    assert "<img" not in html_body and "<svg" not in html_body
    assert "&lt;img src=x onerror=alert(1)&gt;" in html_body
    assert 'href="javascript' not in html_body and "<strong>bold</strong>" in html_body
    assert ('<a href="https://example.org/a?b=1&amp;c=2" rel="nofollow noopener noreferrer ugc">'
            in html_body)

    await login_form(client, "ana@example.org")
    for url in ("/community", f"/community/{post['id']}", f"/community/{post['id']}/edit"):
        page = await client.get(url)
        assert page.status_code == 200, url
        text = page.text
        assert "<script>alert" not in text and "<img src=x" not in text, url
        assert "<svg onload" not in text and "<iframe" not in text, url
        assert 'onmouseover="x()"' not in text, url
        assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in text or \
            "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in text, url


async def test_shared_ecg_result_card_shows_model_and_disclaimer(client, make_user):
    ana = await make_user("ana@example.org")
    ben = await make_user("ben@example.org")
    check_id = await make_check("ana@example.org", media="image/jpeg")
    ben_check = await make_check("ben@example.org")
    stolen = await client.post("/api/v1/posts", headers=ana, json={
        "title": "x", "body": "y", "check_id": ben_check})
    assert stolen.status_code == 404  # someone else's check cannot be shared

    post = await new_post(client, ana, title="My ECG says AF?", check_id=check_id)
    card = post["shared_result"]
    assert card["label"] == "atrial_fibrillation" and card["confidence"] == 0.91
    assert card["model"] == {"name": "ecg_rhythm", "version": "1.2.0"}
    assert card["disclaimer"].startswith("CareLens is not a medical device")
    assert post["shared_photo_url"] is None  # the photo stays private unless ticked
    page = await client.get(f"/api/v1/posts/{post['id']}", headers=ben)
    assert "probabilities" not in page.json()["shared_result"]

    await login_form(client, "ben@example.org")
    html = (await client.get(f"/community/{post['id']}")).text
    assert "ecg_rhythm v1.2.0" in html and "91%" in html
    assert "this is not a diagnosis" in html and "chest pain" in html and "112 bpm" in html
    assert (await client.get(f"/community/{post['id']}/photo")).status_code == 404


async def test_new_post_page_attaches_my_check_and_reencodes_the_image(client, make_user,
                                                                       app_settings):
    await make_user("ana@example.org")
    check_id = await make_check("ana@example.org")
    token = await login_form(client, "ana@example.org")
    form = await client.get(f"/community/new?check={check_id}")
    assert form.status_code == 200 and "ecg_rhythm v1.2.0" in form.text
    assert f'<option value="{check_id}" selected' in form.text
    # the picker names the check and its finding in the member's words, not "ECG · #12"
    assert "ECG check · Atrial fibrillation (irregular rhythm) · " in form.text

    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x010E] = "home: 37.5665N 126.9780E"  # ImageDescription
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, format="JPEG", exif=exif)
    assert b"SecretCam" in buffer.getvalue()
    response = await client.post("/community/new", data={
        "_csrf_token": token, "title": "Photo post", "body": "See the picture",
        "check_id": str(check_id)}, files={"image": ("me.jpg", buffer.getvalue(), "image/jpeg")},
        follow_redirects=False)
    assert response.status_code in (302, 303), response.text
    post = await Post.objects().where(Post.title == "Photo post").first()
    assert post.shared_check == check_id and post.shared_photo is False
    stored = (app_settings.uploads_dir / post.image_file).read_bytes()
    assert b"SecretCam" not in stored and not Image.open(io.BytesIO(stored)).getexif()
    image = await client.get(f"/community/{post.id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"

    bad = await client.post("/community/new", data={
        "_csrf_token": token, "title": "Bad", "body": "x"},
        files={"image": ("x.jpg", b"not an image at all", "image/jpeg")})
    assert bad.status_code in (400, 415, 422) and 'role="alert"' in bad.text
    no_csrf = await client.post("/community/new", data={"title": "t", "body": "b"},
                                files={"image": ("", b"", "application/octet-stream")})
    assert no_csrf.status_code == 403


async def test_pages_like_comment_edit_delete_forms(client, make_user):
    await make_user("ana@example.org")
    token = await login_form(client, "ana@example.org")
    await client.post("/community/new", data={"_csrf_token": token, "title": "Hello",
                                              "body": "First *post*"},
                      files={"image": ("", b"", "application/octet-stream")})
    post = await Post.objects().first()
    assert post.image_file == ""
    await client.post(f"/community/{post.id}/like", data={"_csrf_token": token})
    await client.post(f"/community/{post.id}/comments", data={"_csrf_token": token,
                                                              "body": "A comment"})
    page = await client.get(f"/community/{post.id}")
    assert "<em>post</em>" in page.text and "A comment" in page.text
    assert 'aria-pressed="true"' in page.text and "/static/js/community.js" in page.text
    await client.post(f"/community/{post.id}/edit", data={"_csrf_token": token,
                                                          "title": "Hello again", "body": "x"})
    assert (await Post.objects().first()).title == "Hello again"
    await client.post(f"/community/{post.id}/delete", data={"_csrf_token": token})
    assert await Post.count() == 0


async def test_pagination_and_popular_sort(client, make_user):
    ana = await make_user("ana@example.org")
    ben = await make_user("ben@example.org")
    ids = [(await new_post(client, ana, title=f"Post {i}"))["id"] for i in range(12)]
    await client.post(f"/api/v1/posts/{ids[3]}/like", headers=ben)
    first = (await client.get("/api/v1/posts?per_page=5", headers=ana)).json()
    assert first["pages"] == 3 and first["total"] == 12
    assert [p["title"] for p in first["items"]][:2] == ["Post 11", "Post 10"]
    last = (await client.get("/api/v1/posts?per_page=5&page=3", headers=ana)).json()
    assert [p["title"] for p in last["items"]] == ["Post 1", "Post 0"]
    popular = (await client.get("/api/v1/posts?sort=popular", headers=ana)).json()
    assert popular["items"][0]["title"] == "Post 3"
    await login_form(client, "ana@example.org")
    page = await client.get("/community?page=2")
    assert "Page 2 of 2" in page.text and "Post 1" in page.text


class RecordingPush:
    def __init__(self):
        self.sent = []

    async def send_to_user(self, user_id, note):
        self.sent.append((user_id, note))


async def test_comment_notifies_the_post_author_by_push(client, make_user):
    ana = await make_user("ana@example.org", name="Ana")
    ben = await make_user("ben@example.org", name="Ben")
    push = RecordingPush()
    client.app.state.push = push
    post = await new_post(client, ana, title="My question")
    await client.post(f"/api/v1/posts/{post['id']}/comments", headers=ana, json={"body": "me"})
    await client.post(f"/api/v1/posts/{post['id']}/comments", headers=ben, json={"body": "hi"})
    for _ in range(50):
        if push.sent:
            break
        await asyncio.sleep(0.02)
    assert len(push.sent) == 1  # my own comment does not notify me
    user, note = push.sent[0]
    assert user == await user_id("ana@example.org")
    assert "Ben" in note.body and "My question" in note.body
    assert note.url == f"/community/{post['id']}"
