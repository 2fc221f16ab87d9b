"""The one error type of the service layer; the API edge turns it into {"error": ...}."""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, message: str, status_code: int = 400, **extra):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.extra = extra

    def to_json(self) -> dict:
        return {"error": self.message, **self.extra}

    def localized(self, gettext) -> str:
        """As UnusableInputError.localized: the message in the user's language."""
        return gettext(self.message)


class NotFoundError(ServiceError):
    def __init__(self, message: str = "Not found."):
        super().__init__(message, status_code=404)
