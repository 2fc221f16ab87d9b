"""The one error type of the inference layer; the API turns it into {"error": ...} + 422."""

from __future__ import annotations


class UnusableInputError(Exception):
    """The input cannot be analysed (not an image, not an eardrum, no ECG, too blurry...).

    `message` is shown to a person as is; `extra` is merged into the error JSON
    (e.g. {"is_eardrum": False}).
    """

    def __init__(self, message: str, *, extra: dict | None = None, status_code: int = 422):
        super().__init__(message)
        self.message = message
        self.extra = dict(extra or {})
        self.status_code = status_code

    def to_json(self) -> dict:
        return {"error": self.message, **self.extra}


class ModelIntegrityError(RuntimeError):
    """A weights file does not match its card (sha256) or its card is missing."""
