"""The one error type of the inference layer; the API turns it into {"error": ...} + 422."""

from __future__ import annotations

from collections.abc import Callable


class UnusableInputError(Exception):
    """The input cannot be analysed (not an image, not an eardrum, no ECG, too blurry...).

    `message` is the English text (a %-template when `params` are given); `extra` is merged
    into the error JSON (e.g. {"is_eardrum": False}). The web layer shows `localized(gettext)`:
    the template in the user's language, with every parameter that has its own
    `localized(gettext)` (a Phrase, the ECG quality advice) translated too, so the inference code
    stays free of request state. Other parameters (file names, lead names, numbers, a library's
    message) are shown as they are.
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


class Phrase(str):
    """A fixed English phrase given as a refusal parameter ("CSV file" where the upload had no
    name, "the picture is too dark"): translated with the template. Marking the phrases, rather
    than translating every string parameter, keeps a file the user named "none" or "photo" as
    they named it."""

    def localized(self, gettext: Callable[[str], str]) -> str:
        return gettext(str(self))


def _localized_param(value, gettext: Callable[[str], str]):
    return value.localized(gettext) if hasattr(value, "localized") else value


class ModelIntegrityError(RuntimeError):
    """A weights file does not match its card (sha256) or its card is missing."""
