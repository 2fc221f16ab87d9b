"""Piccolo's configuration module (PICCOLO_CONF=backend.piccolo_conf).

DB is built from Settings; backend.tables.db.configure_database() replaces it at run time
so the app, the CLI and the tests can point at SQLite or PostgreSQL with the same code.
"""

from piccolo.conf.apps import AppRegistry

from backend.settings import get_settings
from backend.tables.db import build_engine

DB = build_engine(get_settings())

APP_REGISTRY = AppRegistry(apps=["backend.tables.piccolo_app"])
