"""Exceptions: one class per culoss_status, all subclasses of :class:`CulossError`."""

from __future__ import annotations

from typing import Dict, Type


class CulossError(Exception):
    """A culoss C call failed.

    ``status`` is the culoss_status value, ``status_name`` its name (e.g.
    ``"CULOSS_ERROR_SHAPE_MISMATCH"``) and ``detail`` the text of ``culoss_last_error()``.
    """

    status = -1

    def __init__(self, status: int, status_name: str, detail: str, function: str = ""):
        self.status = status
        self.status_name = status_name
        self.detail = detail
        self.function = function
        where = " in %s" % function if function else ""
        super().__init__("%s%s: %s" % (status_name, where, detail or "(no detail)"))


class InvalidArgumentError(CulossError, ValueError):
    status = 1


class ShapeMismatchError(CulossError, ValueError):
    status = 2


class UnsupportedDtypeError(CulossError, TypeError):
    status = 3


class UnsupportedDeviceError(CulossError, ValueError):
    status = 4


class InvalidTargetError(CulossError, ValueError):
    status = 5


class OutOfMemoryError(CulossError, MemoryError):
    status = 6


class InsufficientWorkspaceError(CulossError, ValueError):
    status = 7


class CudaError(CulossError, RuntimeError):
    status = 8


class NotSupportedError(CulossError, NotImplementedError):
    status = 9


class InternalError(CulossError, RuntimeError):
    status = 10


STATUS_CLASSES: Dict[int, Type[CulossError]] = {
    cls.status: cls
    for cls in (InvalidArgumentError, ShapeMismatchError, UnsupportedDtypeError,
                UnsupportedDeviceError, InvalidTargetError, OutOfMemoryError,
                InsufficientWorkspaceError, CudaError, NotSupportedError, InternalError)
}


def error_for(status: int, status_name: str, detail: str, function: str = "") -> CulossError:
    """The exception for a failing status (CulossError itself for a status added later)."""
    cls = STATUS_CLASSES.get(int(status), CulossError)
    return cls(int(status), status_name, detail, function)
