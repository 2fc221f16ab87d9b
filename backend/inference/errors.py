"""The one error type of the inference layer; the API turns it into {"error": ...} + 422."""

from __future__ import annotations

from collections.abc import Callable


class UnusableInputError(Exception):
    """The input cannot be analysed (not an image, not an eardrum, no ECG, too blurry...).

    `message` is the English text (a %-template when `params` are given); `extra` is merged
    into the error JSON (e.g. {"is_eardrum": False}). The web layer shows `localized(gettext)`:
    the template and every string parameter looked up in the user's language (a parameter
    with its own `localized(gettext)` translates itself), so the inference code stays free of
    request state.
    """

    def __init__(
        self,
        message: str,
        *,
        params: dict | None = None,
        extra: dict | None = None,
        status_code: int = 422,
    ):
        self.template = message
        self.params = dict(params or {})
        self.message = message % self.params if self.params else message
        super().__init__(self.message)
        self.extra = dict(extra or {})
        self.status_code = status_code

    def localized(self, gettext: Callable[[str], str]) -> str:
        if not self.params:
            return gettext(self.template)
        params = {k: _localized_param(v, gettext) for k, v in self.params.items()}
        return gettext(self.template) % params

    def to_json(self) -> dict:
        return {"error": self.message, **self.extra}


def _localized_param(value, gettext: Callable[[str], str]):
    """A parameter in the user's language: an object that knows how (`localized(gettext)`,
    e.g. a list of quality advice), a fixed phrase through the catalog, anything else as is."""
    if hasattr(value, "localized"):
        return value.localized(gettext)
    if isinstance(value, str) and value:  # gettext("") is the catalog's header
        return gettext(value)
    return value


class ModelIntegrityError(RuntimeError):
    """A weights file does not match its card (sha256) or its card is missing."""
