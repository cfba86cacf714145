"""One root exception; each error says whether trying again can help (as aiokafka's errors do)."""


class TidegateError(Exception):
    """Root of every error tidegate raises on purpose."""

    retriable: bool = False


class ConfigError(TidegateError):
    """An environment variable is missing or malformed; the message names it."""


class TransientError(TidegateError):
    """A dependency (database, broker) failed in a way that may pass: retry the same event."""

    retriable = True


class InvalidEvent(TidegateError):
    """An event that cannot be decoded or is not allowed; it goes to the dead-letter topic."""
