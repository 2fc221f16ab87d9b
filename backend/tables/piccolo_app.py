"""Piccolo app config: every table of CareLens and its one migrations folder."""

import os

from piccolo.conf.apps import AppConfig

from backend.tables.accounts import ApiToken, User
from backend.tables.audit import AuditLog
from backend.tables.checks import Check
from backend.tables.community import Comment, Post, PostLike, Report
from backend.tables.places import Place
from backend.tables.push import PushDelivery, PushSubscription, Reminder
from backend.tables.vitals import Vital

ALL_TABLES = [
    User,
    ApiToken,
    Check,
    Vital,
    Post,
    Comment,
    PostLike,
    Report,
    PushSubscription,
    Reminder,
    PushDelivery,
    AuditLog,
    Place,
]

APP_CONFIG = AppConfig(
    app_name="carelens",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "migrations"),
    table_classes=ALL_TABLES,
    migration_dependencies=[],
    commands=[],
)
