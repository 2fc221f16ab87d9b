"""create_app(settings) -> Litestar: the one place that wires plugins, middleware and routes."""

from __future__ import annotations

import logging

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore
from litestar.stores.registry import StoreRegistry
from litestar.template.config import TemplateConfig
from piccolo.engine.postgres import PostgresEngine

from backend import i18n
from backend.api import admin as admin_api
from backend.api import auth, check_pages, checks, pages
from backend.api import community as community_api
from backend.api import places as places_api
from backend.api import push as push_api
from backend.api import vitals as vitals_api
from backend.api.deps import DEPENDENCIES
from backend.api.errors import EXCEPTION_HANDLERS, document_error_responses
from backend.api.web import (
    BearerAwareCSRFMiddleware,
    CurrentUserMiddleware,
    LocaleMiddleware,
    SecurityHeadersMiddleware,
    client_ip,
    security_headers,
)
from backend.inference.registry import ModelRegistry
from backend.services.inference_pool import InferencePool
from backend.services.local_time import local_time_text
from backend.settings import PROJECT_ROOT, Settings, get_settings
from backend.tables.db import ServerSQLiteEngine, configure_database

TEMPLATES_DIR = PROJECT_ROOT / "pwa" / "templates"
STATIC_DIR = PROJECT_ROOT / "pwa" / "static"

# POSTs that create accounts or sessions: throttled per client address.
AUTH_PATHS = {"/login", "/register", "/api/v1/auth/token", "/api/v1/auth/register"}

ROUTE_HANDLERS: list = [
    pages.PagesController,
    pages.SettingsController,
    auth.AuthController,
    auth.MeController,
    checks.ChecksController,
    check_pages.CheckPagesController,
    places_api.PlacesApiController,
    places_api.PlacesPageController,
    community_api.CommunityApiController,
    community_api.CommunityPagesController,
    admin_api.AdminApiController,
    admin_api.AdminPagesController,
    admin_api.PasswordResetController,
    vitals_api.VitalsApiController,
    vitals_api.RecordApiController,
    vitals_api.VitalsPagesController,
    push_api.PushController,
    push_api.RemindersController,
    push_api.NotificationSettingsController,
]


def configure_jinja(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    env.globals["current_locale"] = i18n.current_locale.get
    env.globals["supported_locales"] = i18n.SUPPORTED_LOCALES
    env.filters["local_time"] = local_time_text


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = configure_database(settings)
    registry = ModelRegistry(settings.weights_dir, settings.inference_threads)
    pool = InferencePool(settings.inference_workers, settings.inference_queue)
    secret = settings.resolved_secret_key()

    def auth_throttled(request) -> bool:
        return request.method == "POST" and request.url.path in AUTH_PATHS

    def upload_throttled(request) -> bool:
        return request.method == "POST" and request.url.path.startswith("/api/v1/checks/")

    auth_limit = RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_auth_per_minute),
        identifier_for_request=lambda r: "auth:" + client_ip(r, settings.trusted_proxies),
        check_throttle_handler=auth_throttled,
        store="rate_limit",
    )
    upload_limit = RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_upload_per_minute),
        identifier_for_request=lambda r: "upload:" + client_ip(r, settings.trusted_proxies),
        check_throttle_handler=upload_throttled,
        store="rate_limit",
    )
    session_config = ServerSideSessionConfig(
        key="carelens_session",
        secure=settings.production,
        httponly=True,
        samesite="lax",
        max_age=30 * 24 * 3600,
        exclude=["^/static/"],
    )
    csrf_config = CSRFConfig(
        secret=secret,
        cookie_secure=settings.production,
        cookie_samesite="lax",
        # These two set no cookie and answer with a token in the body, which a cross-site
        # page cannot read: nothing for CSRF to protect, and API clients have no token yet.
        exclude=["^/static/", "^/api/v1/auth/register$", "^/api/v1/auth/token$"],
    )

    async def on_startup() -> None:
        if isinstance(engine, PostgresEngine) and settings.database_pool:
            await engine.start_connection_pool()
        if isinstance(engine, ServerSQLiteEngine):
            await engine.open_shared_connection()

    async def on_shutdown() -> None:
        pool.shutdown()
        if isinstance(engine, ServerSQLiteEngine):
            await engine.close_shared_connection()
        if isinstance(engine, PostgresEngine) and settings.database_pool:
            await engine.close_connection_pool()

    app = Litestar(
        route_handlers=[
            *ROUTE_HANDLERS,
            create_static_files_router(path="/static", directories=[STATIC_DIR]),
        ],
        dependencies=DEPENDENCIES,
        middleware=[
            SecurityHeadersMiddleware(security_headers(settings)),
            session_config.middleware,
            CurrentUserMiddleware(),
            LocaleMiddleware(),
            auth_limit.middleware,
            upload_limit.middleware,
            DefineMiddleware(BearerAwareCSRFMiddleware, config=csrf_config),
        ],
        stores=StoreRegistry(
            stores={
                # Sessions on disk so they survive restarts and are shared by workers.
                "sessions": FileStore(settings.data_dir / "sessions", create_directories=True),
                "rate_limit": MemoryStore(),
            }
        ),
        template_config=TemplateConfig(
            directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=configure_jinja
        ),
        openapi_config=OpenAPIConfig(
            title="CareLens API", version="1.0.0", path="/schema",
            # Only the machine-readable schema: the HTML viewers load from a CDN.
            render_plugins=[JsonRenderPlugin(), YamlRenderPlugin()],
            description="Home health checks: ECG, skin and ear analysis, vitals, community.",
        ),
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_upload_bytes + 1024 * 1024,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        debug=False,
    )
    document_error_responses(app)
    app.state.settings = settings
    app.state.registry = registry
    app.state.pool = pool
    push_api.install_push(app)  # push service, results-ready hook, reminder scheduler
    return app


def asgi_app() -> Litestar:
    """uvicorn factory: `uvicorn backend.app:asgi_app --factory`."""
    logging.basicConfig(level=logging.INFO)
    return create_app()
