"""What can go wrong, in the domain's words: every refusal the image code raises.

Belongs here: the error kinds (one class per kind of refusal) and the
translation of the engine's refusals into them. Each error carries a stable
``code`` (clients and tests match on it) and a ``message`` a person can act
on. No HTTP here: which status a kind answers is ``http_errors``'s business,
so a command can be called from a page, the API, the seed endpoints or the
ops console and each door answers in its own shape.
"""

from __future__ import annotations

from thumbnails import engine


class ImageshareError(Exception):
    """A refused request: a stable ``code`` and a ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class BadInput(ImageshareError):
    """The request itself is wrong: nothing sent, an empty or corrupt file, a bad URL, a bad size."""


class TooLarge(ImageshareError):
    """Over a limit: bytes (declared, sent or fetched) or pixels."""


class UnsupportedType(ImageshareError):
    """Not an image in a format the engine reads."""


class NotFound(ImageshareError):
    """Nothing there for this caller: ``no_such_upload`` (a direct upload never sent, or another account's)."""


class Conflict(ImageshareError):
    """The image's state forbids it: ``not_failed``, ``not_retryable``, ``image_failed``."""


class Unavailable(ImageshareError):
    """A service the request needs is down; the same request may work shortly (``retry_after`` seconds)."""

    def __init__(self, code: str, message: str, retry_after: int = 5) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after

    @classmethod
    def storage(cls) -> Unavailable:
        return cls("storage_unavailable", "Storage is unavailable; try again shortly.")

    @classmethod
    def queue(cls) -> Unavailable:
        return cls("queue_unavailable", "The processing queue is unavailable; try again shortly.")


class RateLimited(ImageshareError):
    """This account asked for more than its share; ``retry_after`` seconds, when given, says when to ask again."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """More work is waiting than the workers can drain soon: come back after ``retry_after`` seconds."""

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(code, message, retry_after)


def from_engine(exc: engine.EngineError) -> ImageshareError:
    """The engine's refusal (its code and message kept) as the kind of error it is."""
    if isinstance(exc, engine.UnsupportedFormat):
        return UnsupportedType(exc.code, exc.message)
    if isinstance(exc, engine.TooManyPixels):
        return TooLarge(exc.code, exc.message)
    return BadInput(exc.code, exc.message)  # corrupt image, invalid spec, anything else it refuses
