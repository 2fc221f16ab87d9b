"""Dependencies injected into handlers (Provide): settings, registry, pool, current user."""

from __future__ import annotations

from litestar import Request
from litestar.di import Provide

from backend.inference.registry import ModelRegistry
from backend.services.inference_pool import InferencePool
from backend.settings import Settings
from backend.tables.accounts import User


async def provide_settings(request: Request) -> Settings:
    return request.app.state.settings


async def provide_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def provide_pool(request: Request) -> InferencePool:
    return request.app.state.pool


async def provide_user(request: Request) -> User | None:
    return request.scope.get("user")


DEPENDENCIES = {
    "settings": Provide(provide_settings),
    "registry": Provide(provide_registry),
    "pool": Provide(provide_pool),
    "current_user": Provide(provide_user),
}
