"""Every error leaves the app as {"error": "<message a person understands>"} (JSON API) or
as an error page (HTML); 5xx only for real faults."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Redirect, Template

from backend.i18n import gettext as _
from backend.inference.errors import ModelIntegrityError, UnusableInputError
from backend.services.errors import ServiceError
from backend.services.inference_pool import InferenceBusyError

log = logging.getLogger("carelens")


def wants_json(request: Request) -> bool:
    if request.url.path.startswith("/api/") or request.url.path.startswith("/schema"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _respond(request: Request, status: int, body: dict, headers: dict | None = None) -> Response:
    if wants_json(request):
        return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    if status == 401:
        return Redirect(f"/login?next={quote(request.url.path)}")
    # The signed-in user, so the page's navigation does not offer "Log in" to someone logged in
    user = request.scope.get("user")
    return Template(
        "error.html", context={"status": status, "message": body["error"], "user": user},
        status_code=status, headers=headers,
    )


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra[:5]:
        if isinstance(item, dict):
            key = item.get("key") or item.get("source") or ""
            parts.append(f"{key}: {item.get('message', '')}".strip(": "))
    detail = "; ".join(p for p in parts if p)
    return _("Some fields are missing or invalid.") + (f" ({detail})" if detail else "")


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        message = _validation_message(exc)
    elif status == 401:
        message = exc.detail if exc.detail and exc.detail != "Unauthorized" else _(
            "Please log in first.")
    elif status == 403 and "CSRF" in (exc.detail or ""):
        message = _("The form expired or was sent from another site. Reload the page and try again.")
    elif status == 404:
        message = exc.detail if exc.detail and exc.detail != "Not Found" else _("Not found.")
    elif status == 405:
        message = _("This address does not accept that method.")
    elif status == 429:
        message = _("Too many attempts. Please wait a minute and try again.")
    elif status >= 500:
        log.exception("server error", exc_info=exc)
        message = _("Something went wrong on our side. Please try again.")
    else:
        message = exc.detail or _("The request could not be processed.")
    headers = dict(exc.headers or {})
    return _respond(request, status, {"error": message}, headers or None)


def handle_service_error(request: Request, exc: ServiceError) -> Response:
    headers = None
    if isinstance(exc, InferenceBusyError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return _respond(request, exc.status_code, {**exc.to_json(), "error": exc.localized(_)}, headers)


def handle_unusable_input(request: Request, exc: UnusableInputError) -> Response:
    return _respond(request, exc.status_code, {**exc.to_json(), "error": exc.localized(_)})


def handle_model_integrity(request: Request, exc: ModelIntegrityError) -> Response:
    log.error("model integrity: %s", exc)
    return _respond(
        request, 503, {"error": _("This check is unavailable right now (model not loaded).")}
    )


def handle_out_of_range(request: Request, exc: Exception) -> Response:
    # An id or number beyond the database's integer range cannot name anything stored.
    return _respond(request, 400, {"error": _("A number in the request is out of range.")})


def handle_server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(request, 500, {"error": _("Something went wrong on our side. Please try again.")})


@dataclass
class ErrorBody:
    """Every 4xx/5xx body: a message a person understands, plus context for some errors
    (e.g. `is_eardrum: false`)."""

    error: str


ERROR_RESPONSES = {
    status: ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)
    for status, description in {
        400: "Invalid input", 401: "Not logged in", 403: "Not allowed or CSRF check failed",
        404: "Not found (or not yours)", 409: "Conflict", 413: "Upload too large",
        422: "Unusable input (not an image, not an eardrum, no ECG...)",
        429: "Too many requests", 503: "Busy or model unavailable; see Retry-After",
    }.items()
}


def document_error_responses(app) -> None:
    """Litestar documents its own error shape; ours is {"error": ...}. Put ours in the
    OpenAPI schema of every JSON route so clients (and schemathesis) see the truth."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if getattr(handler, "include_in_schema", True) is False:
                continue
            handler.responses = {**ERROR_RESPONSES, **(handler.responses or {})}


EXCEPTION_HANDLERS = {
    HTTPException: handle_http_exception,
    ServiceError: handle_service_error,
    UnusableInputError: handle_unusable_input,
    ModelIntegrityError: handle_model_integrity,
    OverflowError: handle_out_of_range,
    asyncpg.exceptions.NumericValueOutOfRangeError: handle_out_of_range,
    Exception: handle_server_error,
}
