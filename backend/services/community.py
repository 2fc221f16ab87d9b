"""Community board: posts, comments, likes, reports, shared check results.

Every piece of user text is stored as typed and rendered by `render_text`, which escapes
first and only then applies a tiny markdown-light transform, so no user input ever reaches
the page as markup. Posts hidden by a moderator disappear for everyone but their author
(who sees them marked) and administrators.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup
from PIL import Image

from backend.i18n import N_, current_locale
from backend.i18n import gettext as _
from backend.inference.images import load_image_rgb
from backend.inference.result import DISCLAIMERS
from backend.services.errors import NotFoundError, ServiceError
from backend.services.result_cards import KIND_TITLES, label_name
from backend.services.uploads import encode_jpeg
from backend.tables.accounts import User
from backend.tables.checks import Check
from backend.tables.community import Comment, Post, PostLike, Report

log = logging.getLogger("carelens.community")

MAX_TITLE = 200
MAX_BODY = 10_000
MAX_COMMENT = 2_000
MAX_IMAGE_SIDE = 1600
PER_PAGE = 10
SORTS = ("new", "popular")
COMMUNITY_UPLOADS = "community"

# ----------------------------------------------------------------- markdown-light

_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
# Runs on already-escaped text: a URL ends at whitespace or at an escaped quote/bracket.
_URL = r"https?://[^\s<>\"']+?(?=(?:&quot;|&#x27;|&lt;|&gt;|[.,;:!?)]*(?:\s|$)))"
_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^\s()<>]+)\)")
_BARE_URL = re.compile(r"(?<![\"=>])\b(" + _URL + r")")


def _anchor(url: str, label: str) -> str:
    return f'<a href="{url}" rel="nofollow noopener noreferrer ugc">{label}</a>'


def _inline(escaped: str) -> str:
    links: list[str] = []

    def keep(anchor: str) -> str:
        links.append(anchor)
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(lambda m: keep(_anchor(m.group(2), m.group(1))), escaped)
    text = _BARE_URL.sub(lambda m: keep(_anchor(m.group(1), m.group(1))), text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], text)


def plain_excerpt(text: str, limit: int = 140) -> str:
    """One line of plain text for the list: markdown markers and link syntax dropped."""
    text = _LINK.sub(r"\1", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<![*\w])\*([^*\n]+?)\*(?![*\w])", r"\1", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_text(text: str) -> Markup:
    """Paragraphs, line breaks, **bold**, *italic*, [label](https://...) and bare http(s)
    links (rel=nofollow noopener). Escapes everything first: the transform only ever adds
    our own tags around already-escaped text."""
    escaped = html.escape(text.replace("\x00", "").replace("\r\n", "\n"), quote=True)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", escaped) if p.strip()]
    return Markup("".join(
        "<p>" + "<br>".join(_inline(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs))


# ----------------------------------------------------------------- views


@dataclass
class PageOf:
    items: list[dict[str, Any]]
    page: int
    pages: int
    total: int
    sort: str


@dataclass
class PostView:
    post: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _can_see_hidden(viewer: User | None, author_id: int) -> bool:
    return viewer is not None and (viewer.id == author_id or viewer.is_admin)


def shared_result(check: dict[str, Any] | None) -> dict[str, Any] | None:
    """The result card of a shared check: what it found, how sure, which model, the
    disclaimer. Nothing else of the check (no input, no intervals beyond the summary)."""
    if not check or check.get("status") != "done":
        return None
    result = check.get("result") or {}
    if isinstance(result, str):
        import json

        result = json.loads(result or "{}")
    model = result.get("model") or {}
    summary = {
        "check_id": check["id"],
        "kind": check["kind"],
        "label": result.get("label", ""),
        "label_name": _label_name(check["kind"], result.get("label", "")),
        "confidence": result.get("confidence"),
        "urgency": result.get("urgency", ""),
        "model": {"name": model.get("name", check.get("model_name", "")),
                  "version": model.get("version", check.get("model_version", ""))},
        "disclaimer": DISCLAIMERS.get(check["kind"]) or result.get("disclaimer", ""),
        "created_at": _iso(check.get("created_at")),
    }
    intervals = result.get("intervals")
    if check["kind"] == "ecg" and isinstance(intervals, dict):
        summary["heart_rate_bpm"] = intervals.get("hr_bpm")
    return summary


def _label_name(kind: str, label: str) -> str:
    return label_name(kind, label) if label else ""


async def _checks_by_id(ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = await Check.select(Check.id, Check.kind, Check.status, Check.result, Check.owner,
                              Check.model_name, Check.model_version, Check.created_at,
                              Check.input_media_type).where(Check.id.is_in(list(ids)))
    return {r["id"]: r for r in rows}


async def _authors(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await User.select(User.id, User.display_name).where(User.id.is_in(list(ids)))
    return {r["id"]: r["display_name"] for r in rows}


async def _liked(viewer: User | None, post_ids: list[int]) -> set[int]:
    if viewer is None or not post_ids:
        return set()
    rows = await PostLike.select(PostLike.post).where(
        (PostLike.user == viewer.id) & PostLike.post.is_in(post_ids))
    return {r["post"] for r in rows}


def _post_dict(row: dict, authors: dict, checks: dict, liked: set[int],
               viewer: User | None) -> dict[str, Any]:
    check = checks.get(row["shared_check"]) if row["shared_check"] else None
    result = shared_result(check)
    photo = bool(result and row["shared_photo"] and check
                 and (check.get("input_media_type") or "").startswith("image/"))
    return {
        "id": row["id"],
        "title": row["title"],
        "body": row["body"],
        "body_html": str(render_text(row["body"])),
        "excerpt": plain_excerpt(row["body"]),
        "author": {"id": row["author"], "display_name": authors.get(row["author"], "")},
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "like_count": row["like_count"],
        "comment_count": row["comment_count"],
        "liked_by_me": row["id"] in liked,
        "is_mine": viewer is not None and viewer.id == row["author"],
        "hidden": row["hidden"],
        "hidden_reason": row["hidden_reason"] if row["hidden"] else "",
        "shared_result": result,
        "shared_photo_url": f"/community/{row['id']}/photo" if photo else None,
        "image_url": f"/community/{row['id']}/image" if row["image_file"] else None,
    }


_POST_COLUMNS = (Post.id, Post.author, Post.title, Post.body, Post.shared_check,
                 Post.shared_photo, Post.image_file, Post.hidden, Post.hidden_reason,
                 Post.like_count, Post.comment_count, Post.created_at, Post.updated_at)


def _visible_to(viewer: User | None):
    if viewer is not None and viewer.is_admin:
        return None
    if viewer is None:
        return Post.hidden == False
    return (Post.hidden == False) | (Post.author == viewer.id)


async def list_posts(viewer: User | None, *, sort: str = "new", page: int = 1,
                     per_page: int = PER_PAGE) -> PageOf:
    sort = sort if sort in SORTS else "new"
    per_page = max(1, min(per_page, 50))
    visible = _visible_to(viewer)
    count_query = Post.count()
    query = Post.select(*_POST_COLUMNS)
    if visible is not None:
        count_query = count_query.where(visible)
        query = query.where(visible)
    total = await count_query
    pages = max(1, math.ceil(total / per_page))
    page = max(1, min(page, pages))
    if sort == "popular":
        query = query.order_by(Post.like_count, Post.comment_count, Post.id, ascending=False)
    else:
        query = query.order_by(Post.created_at, Post.id, ascending=False)
    rows = await query.limit(per_page).offset((page - 1) * per_page)
    authors = await _authors({r["author"] for r in rows})
    checks = await _checks_by_id({r["shared_check"] for r in rows if r["shared_check"]})
    liked = await _liked(viewer, [r["id"] for r in rows])
    return PageOf(items=[_post_dict(r, authors, checks, liked, viewer) for r in rows],
                  page=page, pages=pages, total=total, sort=sort)


async def _post_row(viewer: User | None, post_id: int) -> dict:
    row = await Post.select(*_POST_COLUMNS).where(Post.id == post_id).first()
    if row is None or (row["hidden"] and not _can_see_hidden(viewer, row["author"])):
        raise NotFoundError(N_("This post does not exist or was removed."))
    return row


async def get_post(viewer: User | None, post_id: int) -> PostView:
    row = await _post_row(viewer, post_id)
    checks = await _checks_by_id({row["shared_check"]} if row["shared_check"] else set())
    comment_query = Comment.select(Comment.id, Comment.author, Comment.body, Comment.hidden,
                                   Comment.created_at).where(Comment.post == post_id)
    comments = await comment_query.order_by(Comment.id)
    authors = await _authors({row["author"], *(c["author"] for c in comments)})
    liked = await _liked(viewer, [row["id"]])
    view = PostView(post=_post_dict(row, authors, checks, liked, viewer))
    for c in comments:
        if c["hidden"] and not _can_see_hidden(viewer, c["author"]):
            continue
        view.comments.append({
            "id": c["id"], "body": c["body"], "body_html": str(render_text(c["body"])),
            "author": {"id": c["author"], "display_name": authors.get(c["author"], "")},
            "created_at": _iso(c["created_at"]), "hidden": c["hidden"],
            "is_mine": viewer is not None and viewer.id == c["author"],
        })
    return view


# ----------------------------------------------------------------- writing


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ServiceError(N_("Please give the post a title."), 400)
    if len(title) > MAX_TITLE:
        raise ServiceError(N_("The title can have at most 200 characters."), 400)
    return title


def _clean_body(body: str, limit: int = MAX_BODY) -> str:
    body = (body or "").replace("\x00", "").strip()
    if not body:
        raise ServiceError(N_("Please write something."), 400)
    if len(body) > limit:
        raise ServiceError(N_("The text is too long."), 400)
    return body


async def own_check_for_sharing(user: User, check_id: int) -> Check:
    check = await Check.objects().where((Check.id == check_id) & (Check.owner == user.id)).first()
    if check is None:
        raise NotFoundError(N_("This check does not exist."))
    if check.status != "done":
        raise ServiceError(N_("Only a finished check can be shared."), 400)
    return check


def store_post_image(data: bytes, uploads_dir: Path) -> str:
    """Decodes (format sniffing, pixel cap), shrinks and re-encodes: no EXIF, no GPS, nothing
    hidden after the image survives. Returns the stored name under uploads/community/."""
    pixels = load_image_rgb(data)
    image = Image.fromarray(pixels)
    image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    import numpy as np

    folder = uploads_dir / COMMUNITY_UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_urlsafe(18)}.jpg"
    (folder / name).write_bytes(encode_jpeg(np.asarray(image), quality=85))
    return f"{COMMUNITY_UPLOADS}/{name}"


async def create_post(author: User, *, title: str, body: str, check_id: int | None = None,
                      share_photo: bool = False, image: bytes | None = None,
                      uploads_dir: Path | None = None) -> int:
    title, body = _clean_title(title), _clean_body(body)
    check = await own_check_for_sharing(author, check_id) if check_id else None
    image_file = ""
    if image:
        if uploads_dir is None:
            raise ServiceError(N_("Images cannot be stored right now."), 500)
        image_file = await asyncio.to_thread(store_post_image, image, uploads_dir)
    post = Post(author=author.id, title=title, body=body,
                shared_check=check.id if check else None,
                shared_photo=bool(check and share_photo), image_file=image_file)
    await post.save()
    return post.id


async def _own_post(user: User, post_id: int) -> Post:
    post = await Post.objects().where(Post.id == post_id).first()
    if post is None or (post.hidden and not _can_see_hidden(user, post.author)):
        raise NotFoundError(N_("This post does not exist or was removed."))
    if post.author != user.id:
        raise ServiceError(N_("Only the author can change this post."), 403)
    return post


async def update_post(user: User, post_id: int, *, title: str | None = None,
                      body: str | None = None) -> None:
    post = await _own_post(user, post_id)
    if title is not None:
        post.title = _clean_title(title)
    if body is not None:
        post.body = _clean_body(body)
    post.updated_at = datetime.now(UTC)
    await post.save([Post.title, Post.body, Post.updated_at])


def _remove_file(uploads_dir: Path | None, name: str) -> None:
    if uploads_dir is not None and name:
        (uploads_dir / name).unlink(missing_ok=True)


async def delete_post(user: User, post_id: int, uploads_dir: Path | None = None) -> None:
    post = await _own_post(user, post_id)
    await Post.delete().where(Post.id == post.id)
    _remove_file(uploads_dir, post.image_file)


async def remove_post(post_id: int, uploads_dir: Path | None = None) -> None:
    """Deletes a post regardless of its author (moderation)."""
    post = await Post.objects().where(Post.id == post_id).first()
    if post is None:
        raise NotFoundError(N_("This post does not exist or was removed."))
    await Post.delete().where(Post.id == post_id)
    _remove_file(uploads_dir, post.image_file)


async def set_post_image(user: User, post_id: int, image: bytes, uploads_dir: Path) -> None:
    post = await _own_post(user, post_id)
    name = await asyncio.to_thread(store_post_image, image, uploads_dir)
    old = post.image_file
    post.image_file = name
    await post.save([Post.image_file])
    _remove_file(uploads_dir, old)


async def post_of_comment(comment_id: int) -> int:
    row = await Comment.select(Comment.post).where(Comment.id == comment_id).first()
    if row is None:
        raise NotFoundError(N_("This comment does not exist."))
    return row["post"]


async def add_comment(user: User, post_id: int, body: str) -> tuple[int, dict]:
    """Returns (comment id, the post row) so the caller can notify the author."""
    row = await _post_row(user, post_id)
    comment = Comment(post=post_id, author=user.id, body=_clean_body(body, MAX_COMMENT))
    await comment.save()
    await _recount_comments(post_id)
    return comment.id, row


async def _recount_comments(post_id: int) -> None:
    count = await Comment.count().where((Comment.post == post_id) & (Comment.hidden == False))
    await Post.update({Post.comment_count: count}).where(Post.id == post_id)


async def _own_comment(user: User, comment_id: int) -> Comment:
    comment = await Comment.objects().where(Comment.id == comment_id).first()
    if comment is None:
        raise NotFoundError(N_("This comment does not exist."))
    if comment.author != user.id:
        raise ServiceError(N_("Only the author can change this comment."), 403)
    return comment


async def update_comment(user: User, comment_id: int, body: str) -> None:
    comment = await _own_comment(user, comment_id)
    comment.body = _clean_body(body, MAX_COMMENT)
    await comment.save([Comment.body])


async def delete_comment(user: User, comment_id: int) -> int:
    comment = await _own_comment(user, comment_id)
    await Comment.delete().where(Comment.id == comment_id)
    await _recount_comments(comment.post)
    return comment.post


async def set_like(user: User, post_id: int, liked: bool | None = None) -> tuple[bool, int]:
    """liked=None toggles. At most one like per user and post: the count is recounted from
    the rows, and a duplicate row from a concurrent double tap is removed."""
    await _post_row(user, post_id)
    rows = await PostLike.select(PostLike.id).where(
        (PostLike.post == post_id) & (PostLike.user == user.id)).order_by(PostLike.id)
    currently = bool(rows)
    want = (not currently) if liked is None else liked
    if want and not currently:
        await PostLike(post=post_id, user=user.id).save()
        rows = await PostLike.select(PostLike.id).where(
            (PostLike.post == post_id) & (PostLike.user == user.id)).order_by(PostLike.id)
    if want and len(rows) > 1:
        await PostLike.delete().where(PostLike.id.is_in([r["id"] for r in rows[1:]]))
    if not want and currently:
        await PostLike.delete().where((PostLike.post == post_id) & (PostLike.user == user.id))
    count = await PostLike.count().where(PostLike.post == post_id)
    await Post.update({Post.like_count: count}).where(Post.id == post_id)
    return want, count


async def report(user: User, *, post_id: int | None = None, comment_id: int | None = None,
                 reason: str = "") -> None:
    reason = (reason or "").strip()[:1000]
    if comment_id is not None:
        comment = await Comment.objects().where(Comment.id == comment_id).first()
        if comment is None:
            raise NotFoundError(N_("This comment does not exist."))
        await _post_row(user, comment.post)
        post_id = comment.post
        same = (Report.comment == comment_id)
    else:
        await _post_row(user, post_id)
        same = (Report.post == post_id) & Report.comment.is_null()
    # One open report per member and item is enough for the queue.
    if await Report.exists().where(same & (Report.reporter == user.id) & (Report.resolved == False)):
        return
    await Report(reporter=user.id, post=post_id, comment=comment_id, reason=reason).save()


async def shareable_checks(user: User) -> list[dict[str, Any]]:
    """The member's 20 newest finished checks, each with what the picker shows of it (the kind
    of check and what it found, in the member's language)."""
    rows = await Check.select(Check.id, Check.kind, Check.status, Check.result, Check.owner,
                              Check.model_name, Check.model_version, Check.created_at,
                              Check.input_media_type).where(
        (Check.owner == user.id) & (Check.status == "done")).order_by(Check.id, ascending=False
                                                                      ).limit(20)
    return [{**r, "kind_title": _(KIND_TITLES.get(r["kind"], N_("Check"))),
             "label_name": (shared_result(r) or {}).get("label_name", "")} for r in rows]


async def image_path(viewer: User | None, post_id: int, uploads_dir: Path) -> Path:
    row = await _post_row(viewer, post_id)
    if not row["image_file"]:
        raise NotFoundError(N_("This post has no image."))
    return uploads_dir / row["image_file"]


async def shared_photo_path(viewer: User | None, post_id: int, uploads_dir: Path) -> Path:
    """The shared check's photo: only when its author ticked 'share the photo'."""
    row = await _post_row(viewer, post_id)
    check = await Check.objects().where(Check.id == row["shared_check"]).first() if row[
        "shared_check"] else None
    if (not row["shared_photo"] or check is None or not check.input_file
            or not (check.input_media_type or "").startswith("image/")):
        raise NotFoundError(N_("This post has no shared photo."))
    return uploads_dir / check.input_file


# ----------------------------------------------------------------- notifications


def comment_notification(post: dict, commenter_name: str):
    """The push message for a post's author; None when the push service is not installed."""
    try:
        from backend.services.push import Notification
    except ImportError:  # pragma: no cover - push is part of the app; kept optional here
        return None
    return Notification(
        title=_("New comment on your post"),
        body=_("%(name)s commented on \u201c%(title)s\u201d", name=commenter_name,
               title=post["title"][:80]),
        url=f"/community/{post['id']}", topic=f"post-{post['id']}", tag=f"post-{post['id']}")


async def notify_post_author(app_state: Any, post: dict, commenter: User) -> None:
    """Hook: web push to the post's author when someone else comments. Uses the push
    service on app.state.push (backend/services/push.py) when the app has one."""
    if post["author"] == commenter.id:
        return
    service = getattr(app_state, "push", None)
    if service is None:
        return
    author = await User.objects().where(User.id == post["author"]).first()
    if author is None or not author.is_active:
        return
    try:
        from backend.services.push import in_quiet_hours

        if in_quiet_hours(author, datetime.now(UTC)):
            return
    except ImportError:  # pragma: no cover
        pass
    token = current_locale.set(author.locale or "en")
    try:
        note = comment_notification(post, commenter.display_name)
    finally:
        current_locale.reset(token)
    if note is None:
        return
    try:
        await service.send_to_user(author.id, note)
    except Exception:  # a failed notification must not fail the comment
        log.exception("comment notification for post %s failed", post["id"])


def schedule_comment_notification(app_state: Any, post: dict, commenter: User) -> None:
    """Sends in the background: push retries must not hold up the comment reply."""
    task = asyncio.create_task(notify_post_author(app_state, post, commenter))
    pending = getattr(app_state, "push_tasks", None)
    if isinstance(pending, set):
        pending.add(task)
        task.add_done_callback(pending.discard)
