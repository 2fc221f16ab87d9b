"""Korean/English UI through Babel message catalogs and Jinja2's i18n extension.

Catalogs live in backend/locale/<lang>/LC_MESSAGES/*.po (messages.po for the shell, one
<area>.po per feature; extracted with pybabel, see the Makefile's `messages` target) and are compiled in memory at start-up, so there is
no build step and no .mo file to forget. The active locale is per request (a contextvar
set by LocaleMiddleware), which keeps concurrent requests in different languages apart.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
SUPPORTED_LOCALES = ("en", "ko")
DEFAULT_LOCALE = "en"

current_locale: ContextVar[str] = ContextVar("current_locale", default=DEFAULT_LOCALE)


@cache
def translations_for(locale: str) -> NullTranslations:
    """All catalogs of a locale merged: messages.po (shell) plus one <area>.po per feature."""
    merged: Translations | None = None
    for po_path in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        translations = Translations(fp=buffer)
        if merged is None:
            merged = translations
        else:
            merged.merge(translations)
    return merged or NullTranslations()


def gettext(message: str, **variables) -> str:
    text = translations_for(current_locale.get()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables) -> str:
    text = translations_for(current_locale.get()).ngettext(singular, plural, n)
    variables.setdefault("num", n)
    return text % variables


def negotiate(accept_language: str | None) -> str:
    if not accept_language:
        return DEFAULT_LOCALE
    preferred = []
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().replace("_", "-")
        if tag:
            preferred.append(tag)
    chosen = Locale.negotiate(preferred, SUPPORTED_LOCALES, sep="-")
    return str(chosen) if chosen else DEFAULT_LOCALE


def pick_locale(cookie_value: str | None, accept_language: str | None) -> str:
    if cookie_value in SUPPORTED_LOCALES:
        return cookie_value  # type: ignore[return-value]
    return negotiate(accept_language)


def N_(message: str) -> str:
    """Marks a message for extraction where it is translated later (service errors)."""
    return message
