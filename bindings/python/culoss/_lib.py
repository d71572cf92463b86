"""Finding, loading and declaring libculoss (ctypes).

Search order (the first hit wins):

1. next to this package: ``culoss/libculoss.so`` (what ``pip install`` puts there);
2. the ``CULOSS_LIBRARY`` environment variable: the path of the library file, or a directory
   that holds ``libculoss.so``;
3. the system: the dynamic loader's search path (``libculoss.so.<major>``, ``libculoss.so``,
   ``ctypes.util.find_library("culoss")``).

A library whose major version differs from :data:`EXPECTED_MAJOR` is refused with
:class:`LibraryError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from ctypes import POINTER, c_char_p, c_double, c_int, c_int64, c_size_t, c_void_p
from typing import List, Optional, Tuple

from ._dlpack import DLTensor

#: The major version of the C API this package is written for (culoss.h CULOSS_VERSION_MAJOR).
EXPECTED_MAJOR = 0

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class LibraryError(ImportError):
    """libculoss could not be found or loaded, or has an incompatible version."""


def _library_file_names() -> List[str]:
    if sys.platform == "darwin":
        return ["libculoss.dylib", "libculoss.%d.dylib" % EXPECTED_MAJOR]
    if sys.platform == "win32":
        return ["culoss.dll"]
    return ["libculoss.so", "libculoss.so.%d" % EXPECTED_MAJOR]


def candidates(package_dir: Optional[str] = None,
               environ: Optional[dict] = None) -> List[Tuple[str, str]]:
    """The places tried, in order, as ``(origin, path_or_name)`` pairs.

    ``origin`` is ``"package"``, ``"CULOSS_LIBRARY"`` or ``"system"``. A ``"system"`` entry is a
    bare name handed to the dynamic loader; the others are paths (only existing files are
    listed, except an explicit ``CULOSS_LIBRARY`` file, which is listed so that a wrong path
    gives a clear error).
    """
    package_dir = _PACKAGE_DIR if package_dir is None else package_dir
    environ = os.environ if environ is None else environ
    out: List[Tuple[str, str]] = []
    for name in _library_file_names():
        path = os.path.join(package_dir, name)
        if os.path.isfile(path):
            out.append(("package", path))
    env = environ.get("CULOSS_LIBRARY", "")
    if env:
        if os.path.isdir(env):
            for name in _library_file_names():
                path = os.path.join(env, name)
                if os.path.isfile(path):
                    out.append(("CULOSS_LIBRARY", path))
        else:
            out.append(("CULOSS_LIBRARY", env))
    for name in reversed(_library_file_names()):  # the versioned soname first
        out.append(("system", name))
    found = ctypes.util.find_library("culoss")
    if found:
        out.append(("system", found))
    return out


class Library:
    """A loaded libculoss with every function declared (argtypes and restype)."""

    def __init__(self, path: str, origin: str = "explicit"):
        self.path = path
        self.origin = origin
        self.cdll = ctypes.CDLL(path)
        self._declare()
        self.version = self.version_fn()

    def _declare(self) -> None:
        lib = self.cdll
        loss_p = c_void_p  # culoss_loss: an opaque pointer
        # enums (culoss_status, culoss_kind, culoss_param) are C ints
        decls = {
            "culoss_version": (c_int, []),
            "culoss_status_string": (c_char_p, [c_int]),
            "culoss_last_error": (c_char_p, []),
            "culoss_loss_create": (c_int, [POINTER(loss_p), c_int]),
            "culoss_loss_destroy": (c_int, [loss_p]),
            "culoss_loss_set_int": (c_int, [loss_p, c_int, c_int64]),
            "culoss_loss_set_float": (c_int, [loss_p, c_int, c_double]),
            "culoss_loss_set_floats": (c_int, [loss_p, c_int, POINTER(c_double), c_int64]),
            "culoss_loss_get_int": (c_int, [loss_p, c_int, POINTER(c_int64)]),
            "culoss_loss_get_float": (c_int, [loss_p, c_int, POINTER(c_double)]),
            "culoss_loss_add_term": (c_int, [loss_p, loss_p, c_double]),
            "culoss_workspace_size": (c_int, [loss_p, POINTER(DLTensor), POINTER(DLTensor),
                                              POINTER(c_size_t)]),
            "culoss_compute": (c_int, [loss_p, POINTER(DLTensor), POINTER(DLTensor),
                                       POINTER(DLTensor), POINTER(DLTensor), POINTER(DLTensor),
                                       c_double, c_void_p, c_size_t, c_void_p]),
            # the statistics API (data parallelism)
            "culoss_stats_size": (c_int, [loss_p, POINTER(DLTensor), POINTER(DLTensor),
                                          POINTER(c_int64)]),
            "culoss_compute_stats": (c_int, [loss_p, POINTER(DLTensor), POINTER(DLTensor),
                                             POINTER(DLTensor), POINTER(DLTensor), c_void_p,
                                             c_size_t, c_void_p]),
            "culoss_compute_from_stats": (c_int, [loss_p, POINTER(DLTensor), POINTER(DLTensor),
                                                  POINTER(DLTensor), POINTER(DLTensor),
                                                  POINTER(DLTensor), POINTER(DLTensor), c_double,
                                                  c_void_p, c_size_t, c_void_p]),
            # the registry of kinds and parameters
            "culoss_kind_name": (c_char_p, [c_int]),
            "culoss_param_name": (c_char_p, [c_int]),
            "culoss_param_value_name": (c_char_p, [c_int, c_int64]),
            "culoss_param_applies": (c_int, [c_int, c_int]),
            "culoss_param_get_type": (c_int, [c_int, POINTER(c_int)]),
            "culoss_param_get_bounds": (c_int, [c_int, c_int, POINTER(c_double),
                                                POINTER(c_double), POINTER(c_int)]),
            "culoss_param_get_default": (c_int, [c_int, c_int, POINTER(c_double)]),
            "culoss_param_accepts": (c_int, [c_int, c_int, c_double]),
            "culoss_loss_output_axes": (c_int, [loss_p, c_int64, POINTER(c_int64),
                                                POINTER(c_int64)]),
            # CPU threads
            "culoss_set_num_threads": (c_int, [c_int]),
            "culoss_get_num_threads": (c_int, []),
        }
        for name, (restype, argtypes) in decls.items():
            try:
                fn = getattr(lib, name)
            except AttributeError as exc:
                raise LibraryError("%s does not export %s: not a culoss library, or a broken one"
                                   % (self.path, name)) from exc
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name[len("culoss_"):], fn)

    # The version function behind a Python name of its own, so that tests can fake a library
    # of another version by replacing it.
    def version_fn(self) -> int:
        return int(self.cdll.culoss_version())

    def check_version(self) -> None:
        v = self.version_fn()
        major = v // 10000
        if major != EXPECTED_MAJOR:
            raise LibraryError(
                "%s is libculoss %s, but this culoss Python package needs major version %d "
                "(%d.x). Install a matching library, or point CULOSS_LIBRARY at one."
                % (self.path, version_string(v), EXPECTED_MAJOR, EXPECTED_MAJOR))

    def error_text(self) -> str:
        """culoss_last_error() as text."""
        msg = self.cdll.culoss_last_error()
        return msg.decode("utf-8", "replace") if msg else ""

    def status_name(self, status: int) -> str:
        """culoss_status_string(status) as text."""
        s = self.cdll.culoss_status_string(int(status))
        return s.decode("ascii", "replace") if s else "CULOSS_STATUS_%d" % status


def version_string(v: int) -> str:
    return "%d.%d.%d" % (v // 10000, (v // 100) % 100, v % 100)


_lock = threading.Lock()
_loaded: Optional[Library] = None


def load(path: Optional[str] = None) -> Library:
    """Loads libculoss (once) and checks its major version.

    With ``path`` that file is loaded (and replaces a library loaded before); otherwise the
    search order of this module's docstring applies.
    """
    global _loaded
    with _lock:
        if path is None and _loaded is not None:
            return _loaded
        tried = []
        if path is not None:
            todo = [("explicit", path)]
        else:
            todo = candidates()
        for origin, cand in todo:
            try:
                lib = Library(cand, origin)
            except OSError as exc:
                tried.append("%s (%s): %s" % (cand, origin, exc))
                if origin in ("explicit", "CULOSS_LIBRARY"):
                    # an explicit choice that fails is an error, not a reason to go on
                    raise LibraryError("could not load libculoss from %s (%s): %s"
                                       % (cand, origin, exc)) from exc
                continue
            lib.check_version()
            _loaded = lib
            return lib
        raise LibraryError(
            "libculoss not found. Tried:\n  " + "\n  ".join(tried) +
            "\nInstall the package with `pip install ./bindings/python` (it builds and bundles "
            "the library), or set CULOSS_LIBRARY to the path of libculoss.so.")


def lib() -> Library:
    """The loaded library (loading it on first use)."""
    return _loaded if _loaded is not None else load()


def _reset_for_tests() -> None:
    global _loaded
    with _lock:
        _loaded = None
