"""JSON logging with the correlation and request ids on every line.

Built on Powertools' ``Logger`` (one JSON object per line, CloudWatch-ready);
this module only fixes the keys every lambdamesh line carries: ``service``,
``correlation_id`` and ``request_id``.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

from lambdamesh_toolkit.privacy import mask_personal, mask_text

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter
    from aws_lambda_powertools.logging.types import PowertoolsLogRecord

# Powertools configures the stdlib logger of a service only once per process
# (later ``Logger(service=...)`` instances reuse the first handler), so one
# instance per service is kept here and handed out again.
_loggers: dict[str, Logger] = {}
# The logger the current invocation was bound to: where the toolkit's own lines about it (hop
# records of outbound calls, :mod:`lambdamesh_toolkit.hops`) go, so they carry its ids.
_bound: ContextVar[Logger | None] = ContextVar("lambdamesh_invocation_logger", default=None)


def get_logger(service: str, *, stream: IO[str] | None = None) -> Logger:
    """Return the JSON logger of ``service``.

    Parameters
    ----------
    service : str
        Service name; every line carries it as ``service``.
    stream : IO[str] | None
        Where to write (default: stdout, which Lambda ships to CloudWatch).
        Only honoured the first time a service's logger is created.

    Returns
    -------
    aws_lambda_powertools.Logger
        The logger; call :func:`bind_invocation` at the start of each
        invocation so its lines carry that invocation's ids.
    """
    logger = _loggers.get(service)
    if logger is None:
        # Imported here: the Powertools logger is the largest import of this
        # package after pydantic, and a module that only needs contracts or
        # errors should not pay for it.
        from aws_lambda_powertools import Logger

        logger = Logger(service=service, stream=stream, logger_formatter=_masking_formatter())
        _loggers[service] = logger
    return logger


def bind_invocation(logger: Logger, correlation_id: str, request_id: str | None) -> None:
    """Put this invocation's ids on every following line of ``logger``.

    Parameters
    ----------
    logger : aws_lambda_powertools.Logger
        A logger from :func:`get_logger`.
    correlation_id : str
        The id from :func:`lambdamesh_toolkit.correlation.use_correlation_id`.
    request_id : str | None
        The Lambda ``aws_request_id`` (``None`` outside Lambda, e.g. in tests).
    """
    logger.append_keys(correlation_id=correlation_id, request_id=request_id)
    _bound.set(logger)


def invocation_logger() -> Logger | None:
    """The logger :func:`bind_invocation` last bound in this context; ``None`` if none was.

    Outside a function's invocation (the CLI, a test that binds nothing) there is none, and
    the toolkit writes no line of its own.
    """
    return _bound.get()


def _masking_formatter() -> BasePowertoolsFormatter:
    """Powertools' JSON formatter, with personal data masked in every line it writes.

    Personal fields of the line (``email``, ``name``, ...) and any email address in it, in the
    message, an extra key or an exception's text, are masked (:mod:`lambdamesh_toolkit.privacy`).
    """
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    class PersonalDataMaskingFormatter(LambdaPowertoolsFormatter):
        def serialize(self, log: dict[str, Any] | PowertoolsLogRecord) -> str:
            return mask_text(super().serialize(log=mask_personal(log)))

    return PersonalDataMaskingFormatter()
