"""Step failures that lead with their cause: the run page shows a `Failure`'s description as the error, where
any other exception appears under Dagster's "Error occurred while executing" wrapper."""

import functools
import traceback
from collections.abc import Callable
from typing import TypeVar

from dagster import Failure, MetadataValue

F = TypeVar("F", bound=Callable)


def cause_first(fn: F) -> F:
    """Re-raise an asset's exception as a `Failure` whose description is the exception's own message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Failure:
            raise
        except Exception as exc:
            raise Failure(
                description=f"{type(exc).__name__}: {exc}",
                metadata={"traceback": MetadataValue.text("".join(traceback.format_exception(exc)))},
            ) from exc

    return wrapper  # type: ignore[return-value]
