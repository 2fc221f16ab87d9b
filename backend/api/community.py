"""Community board: JSON API under /api/v1 and the server-rendered pages under /community."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import File, Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.api.web import requires_login
from backend.i18n import N_
from backend.i18n import gettext as _
from backend.inference.errors import UnusableInputError
from backend.services import community as board
from backend.services.errors import ServiceError
from backend.settings import Settings
from backend.tables.accounts import User

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
Multipart = Body(media_type=RequestEncodingType.MULTI_PART)
MAX_IMAGE_BYTES = 12 * 1024 * 1024


@dataclass
class PostIn:
    title: str
    body: str
    check_id: int | None = None
    share_photo: bool = False


@dataclass
class PostPatch:
    title: str | None = None
    body: str | None = None


@dataclass
class CommentIn:
    body: str


@dataclass
class ReportIn:
    reason: str = ""


@dataclass
class LikeIn:
    liked: bool | None = None


@dataclass
class LikeOut:
    liked: bool
    like_count: int


@dataclass
class Created:
    id: int


@dataclass
class ImageUpload:
    file: UploadFile


async def _image_bytes(upload: UploadFile | None) -> bytes | None:
    if upload is None or not upload.filename:
        return None
    data = await upload.read()
    if len(data) > MAX_IMAGE_BYTES:
        raise ServiceError(N_("The image is too large (over 12 MB)."), 413)
    return data or None


def _page_of(result: board.PageOf) -> dict[str, Any]:
    return {"items": result.items, "page": result.page, "pages": result.pages,
            "total": result.total, "sort": result.sort}


class CommunityApiController(Controller):
    path = "/api/v1"
    tags = ("community",)
    guards = (requires_login,)

    @get("/posts")
    async def list_posts(self, current_user: NamedDependency[User], sort: FromQuery[str] = "new",
                         page: FromQuery[int] = 1,
                         per_page: FromQuery[int] = board.PER_PAGE) -> dict[str, Any]:
        """Posts, newest first (`sort=new`) or most liked first (`sort=popular`)."""
        return _page_of(await board.list_posts(current_user, sort=sort, page=page,
                                               per_page=per_page))

    @post("/posts", status_code=HTTP_201_CREATED)
    async def create_post(
        self,
        data: JSONBody[PostIn],
        current_user: NamedDependency[User],
    ) -> dict[str, Any]:
        """A post; `check_id` attaches one of my finished checks as a result card, and
        `share_photo` adds that check's photo."""
        post_id = await board.create_post(current_user, title=data.title, body=data.body,
                                          check_id=data.check_id, share_photo=data.share_photo)
        return (await board.get_post(current_user, post_id)).post

    @get("/posts/{post_id:int}")
    async def read_post(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
    ) -> dict[str, Any]:
        view = await board.get_post(current_user, post_id)
        return {**view.post, "comments": view.comments}

    @patch("/posts/{post_id:int}")
    async def edit_post(
        self,
        post_id: FromPath[int],
        data: JSONBody[PostPatch],
        current_user: NamedDependency[User],
    ) -> dict[str, Any]:
        await board.update_post(current_user, post_id, title=data.title, body=data.body)
        return (await board.get_post(current_user, post_id)).post

    @delete("/posts/{post_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def delete_post(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> None:
        await board.delete_post(current_user, post_id, settings.uploads_dir)

    @post("/posts/{post_id:int}/image", status_code=HTTP_200_OK)
    async def attach_image(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
        data: Annotated[ImageUpload, Multipart],
    ) -> dict[str, Any]:
        """Adds or replaces the post's picture (re-encoded; EXIF and GPS removed)."""
        image = await _image_bytes(data.file)
        if not image:
            raise ServiceError(N_("Please attach an image in the form field 'file'."), 400)
        await board.set_post_image(current_user, post_id, image, settings.uploads_dir)
        return (await board.get_post(current_user, post_id)).post

    @post("/posts/{post_id:int}/comments", status_code=HTTP_201_CREATED)
    async def comment(
        self,
        post_id: FromPath[int],
        data: JSONBody[CommentIn],
        current_user: NamedDependency[User],
        request: Request,
    ) -> Created:
        comment_id, row = await board.add_comment(current_user, post_id, data.body)
        board.schedule_comment_notification(request.app.state, row, current_user)
        return Created(id=comment_id)

    @patch("/comments/{comment_id:int}")
    async def edit_comment(
        self,
        comment_id: FromPath[int],
        data: JSONBody[CommentIn],
        current_user: NamedDependency[User],
    ) -> Created:
        await board.update_comment(current_user, comment_id, data.body)
        return Created(id=comment_id)

    @delete("/comments/{comment_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def delete_comment(
        self,
        comment_id: FromPath[int],
        current_user: NamedDependency[User],
    ) -> None:
        await board.delete_comment(current_user, comment_id)

    @post("/posts/{post_id:int}/like", status_code=HTTP_200_OK)
    async def like(self, post_id: FromPath[int], current_user: NamedDependency[User],
                   data: JSONBody[LikeIn | None] = None) -> LikeOut:
        """Toggles my like; `{"liked": true|false}` sets it instead (safe to repeat)."""
        liked, count = await board.set_like(current_user, post_id,
                                            data.liked if data else None)
        return LikeOut(liked=liked, like_count=count)

    @post("/posts/{post_id:int}/report", status_code=HTTP_201_CREATED)
    async def report_post(self, post_id: FromPath[int], current_user: NamedDependency[User],
                          data: JSONBody[ReportIn | None] = None) -> None:
        await board.report(current_user, post_id=post_id, reason=data.reason if data else "")

    @post("/comments/{comment_id:int}/report", status_code=HTTP_201_CREATED)
    async def report_comment(self, comment_id: FromPath[int], current_user: NamedDependency[User],
                             data: JSONBody[ReportIn | None] = None) -> None:
        await board.report(current_user, comment_id=comment_id,
                           reason=data.reason if data else "")


# ----------------------------------------------------------------- pages


@dataclass
class NewPostForm:
    title: str = ""
    body: str = ""
    check_id: str = ""
    share_photo: str = ""
    image: UploadFile | None = None


@dataclass
class EditPostForm:
    title: str = ""
    body: str = ""


@dataclass
class TextForm:
    body: str = ""


@dataclass
class ReasonForm:
    reason: str = ""


@dataclass
class LikeForm:
    next: str = ""


def _back(post_id: int, anchor: str = "") -> Redirect:
    return Redirect(f"/community/{post_id}{anchor}")


class CommunityPagesController(Controller):
    path = "/community"
    guards = (requires_login,)
    include_in_schema = False

    @get("/")
    async def board_page(self, current_user: NamedDependency[User], sort: FromQuery[str] = "new",
                         page: FromQuery[int] = 1) -> Template:
        result = await board.list_posts(current_user, sort=sort, page=page)
        return Template("community/list.html", context={"user": current_user, "result": result})

    async def _new_page(self, user: User, check: str | None, status: int = 200,
                        **context: Any) -> Template:
        checks = await board.shareable_checks(user)
        chosen = None
        if check and check.isdigit():
            chosen = next((c for c in checks if c["id"] == int(check)), None)
            if chosen is None:
                context.setdefault("error", _("This check does not exist."))
        return Template("community/new.html", status_code=status, context={
            "user": user, "checks": checks, "chosen": board.shared_result(chosen),
            "chosen_id": chosen["id"] if chosen else "",
            "chosen_has_photo": bool(chosen and (chosen.get("input_media_type") or "")
                                     .startswith("image/")),
            **context})

    @get("/new")
    async def new_page(
        self,
        current_user: NamedDependency[User],
        check: FromQuery[str | None] = None,
    ) -> Template:
        return await self._new_page(current_user, check)

    @post("/new")
    async def create(self, current_user: NamedDependency[User], settings: NamedDependency[Settings],
                     data: Annotated[NewPostForm, Multipart]) -> Template | Redirect:
        try:
            image = await _image_bytes(data.image)
            post_id = await board.create_post(
                current_user, title=data.title, body=data.body,
                check_id=int(data.check_id) if data.check_id.isdigit() else None,
                share_photo=bool(data.share_photo), image=image,
                uploads_dir=settings.uploads_dir)
        except (ServiceError, UnusableInputError) as exc:
            return await self._new_page(current_user, data.check_id, exc.status_code,
                                        error=exc.localized(_), title=data.title, body=data.body)
        return Redirect(f"/community/{post_id}")

    @get("/{post_id:int}")
    async def detail(self, post_id: FromPath[int], current_user: NamedDependency[User]) -> Template:
        view = await board.get_post(current_user, post_id)
        return Template("community/detail.html", context={
            "user": current_user, "post": view.post, "comments": view.comments})

    @get("/{post_id:int}/edit")
    async def edit_page(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
    ) -> Template:
        view = await board.get_post(current_user, post_id)
        if not view.post["is_mine"]:
            raise ServiceError(N_("Only the author can change this post."), 403)
        return Template("community/edit.html", context={"user": current_user, "post": view.post})

    @post("/{post_id:int}/edit")
    async def edit(self, post_id: FromPath[int], current_user: NamedDependency[User],
                   data: Annotated[EditPostForm, Form]) -> Template | Redirect:
        try:
            await board.update_post(current_user, post_id, title=data.title, body=data.body)
        except ServiceError as exc:
            if exc.status_code != 400:
                raise
            view = await board.get_post(current_user, post_id)
            return Template("community/edit.html", status_code=400, context={
                "user": current_user, "post": {**view.post, "title": data.title,
                                                "body": data.body}, "error": exc.localized(_)})
        return _back(post_id)

    @post("/{post_id:int}/delete")
    async def remove(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> Redirect:
        await board.delete_post(current_user, post_id, settings.uploads_dir)
        return Redirect("/community?deleted=1")

    @post("/{post_id:int}/comments")
    async def comment(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
        request: Request,
        data: Annotated[TextForm, Form],
    ) -> Redirect:
        comment_id, row = await board.add_comment(current_user, post_id, data.body)
        board.schedule_comment_notification(request.app.state, row, current_user)
        return _back(post_id, f"#comment-{comment_id}")

    @post("/comments/{comment_id:int}/delete")
    async def remove_comment(
        self,
        comment_id: FromPath[int],
        current_user: NamedDependency[User],
    ) -> Redirect:
        return _back(await board.delete_comment(current_user, comment_id), "#comments")

    @post("/{post_id:int}/like")
    async def like(self, post_id: FromPath[int], current_user: NamedDependency[User]) -> Redirect:
        await board.set_like(current_user, post_id)
        return _back(post_id)

    @post("/{post_id:int}/report")
    async def report_post(self, post_id: FromPath[int], current_user: NamedDependency[User],
                          data: Annotated[ReasonForm, Form]) -> Redirect:
        await board.report(current_user, post_id=post_id, reason=data.reason)
        return _back(post_id, "?reported=1")

    @post("/comments/{comment_id:int}/report")
    async def report_comment(self, comment_id: FromPath[int], current_user: NamedDependency[User],
                             data: Annotated[ReasonForm, Form]) -> Redirect:
        await board.report(current_user, comment_id=comment_id, reason=data.reason)
        post_id = await board.post_of_comment(comment_id)
        return _back(post_id, "?reported=1")

    @get("/{post_id:int}/image", media_type="image/jpeg")
    async def image(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> File:
        path = await board.image_path(current_user, post_id, settings.uploads_dir)
        return File(path=path, media_type="image/jpeg", content_disposition_type="inline",
                    headers={"Cache-Control": "private, max-age=3600"})

    @get("/{post_id:int}/photo", media_type="image/jpeg")
    async def shared_photo(
        self,
        post_id: FromPath[int],
        current_user: NamedDependency[User],
        settings: NamedDependency[Settings],
    ) -> File:
        path = await board.shared_photo_path(current_user, post_id, settings.uploads_dir)
        return File(path=path, media_type="image/jpeg", content_disposition_type="inline",
                    headers={"Cache-Control": "private, max-age=3600"})
