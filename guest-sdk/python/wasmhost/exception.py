"""Errors raised by the SDK (Modal's ``modal.exception``)."""


class Error(Exception):
    """Base of the SDK's errors."""


class FunctionError(Error):
    """A function call failed; the message is the remote error's text."""


class RemoteError(FunctionError):
    """Modal's name for a failed remote call."""


class InvalidInput(Error):
    """A call's input does not fit the parameters; the message is the JSON error list."""


class InvalidError(Error):
    """A wrong use of the SDK."""


class NotFoundError(Error):
    """Something looked up by name does not exist."""


class TimeoutError(TimeoutError, Error):  # noqa: A001 - Modal's name
    """A call did not finish in time."""


FunctionTimeoutError = TimeoutError
