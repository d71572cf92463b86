"""Finding libculoss (package dir, then CULOSS_LIBRARY, then the system) and refusing a
library of another major version."""

import ctypes.util
import os
import shutil

import pytest

import culoss
from culoss import _lib


@pytest.fixture
def fresh(monkeypatch):
    """Runs a test with no library loaded; the one in use is restored afterwards."""
    saved = _lib._loaded
    _lib._reset_for_tests()
    yield
    _lib._loaded = saved


@pytest.fixture
def copies(tmp_path):
    """Two copies of the library in use, in a fake package dir and another dir."""
    real = culoss.library_path()
    pkg = tmp_path / "pkg"
    other = tmp_path / "other"
    pkg.mkdir()
    other.mkdir()
    shutil.copy(real, pkg / "libculoss.so")
    shutil.copy(real, other / "libculoss.so")
    return str(pkg), str(other)


def test_candidate_order(copies, tmp_path):
    pkg, other = copies
    env_file = os.path.join(other, "libculoss.so")
    c = _lib.candidates(pkg, {"CULOSS_LIBRARY": env_file})
    assert c[0] == ("package", os.path.join(pkg, "libculoss.so"))
    assert c[1] == ("CULOSS_LIBRARY", env_file)
    assert all(origin == "system" for origin, _ in c[2:]) and len(c) >= 4
    assert c[2] == ("system", "libculoss.so.%d" % _lib.EXPECTED_MAJOR)
    # a directory in CULOSS_LIBRARY, and an empty package dir
    empty = tmp_path / "empty"
    empty.mkdir()
    c = _lib.candidates(str(empty), {"CULOSS_LIBRARY": other})
    assert c[0] == ("CULOSS_LIBRARY", env_file)
    c = _lib.candidates(str(empty), {})
    assert [o for o, _ in c] == ["system"] * len(c)


def test_package_dir_comes_first(copies, monkeypatch, fresh):
    pkg, other = copies
    monkeypatch.setattr(_lib, "_PACKAGE_DIR", pkg)
    monkeypatch.setenv("CULOSS_LIBRARY", os.path.join(other, "libculoss.so"))
    lib = _lib.load()
    assert lib.origin == "package" and lib.path == os.path.join(pkg, "libculoss.so")
    assert _lib.load() is lib  # loaded once


def test_environment_variable_next(copies, monkeypatch, tmp_path, fresh):
    _, other = copies
    monkeypatch.setattr(_lib, "_PACKAGE_DIR", str(tmp_path))  # no library there
    monkeypatch.setenv("CULOSS_LIBRARY", os.path.join(other, "libculoss.so"))
    lib = _lib.load()
    assert lib.origin == "CULOSS_LIBRARY" and lib.path == os.path.join(other, "libculoss.so")
    # and the package works with it
    import numpy as np
    v, _ = culoss.Dice()(np.zeros((1, 2, 3)), np.zeros((1, 3), np.int64))
    assert np.isfinite(v)


def test_bad_environment_variable_is_an_error(monkeypatch, tmp_path, fresh):
    monkeypatch.setattr(_lib, "_PACKAGE_DIR", str(tmp_path))
    monkeypatch.setenv("CULOSS_LIBRARY", str(tmp_path / "nope.so"))
    with pytest.raises(culoss.LibraryError, match="CULOSS_LIBRARY"):
        _lib.load()


def test_system_last_and_not_found(monkeypatch, tmp_path, fresh):
    monkeypatch.setattr(_lib, "_PACKAGE_DIR", str(tmp_path))
    monkeypatch.delenv("CULOSS_LIBRARY", raising=False)
    monkeypatch.setattr(_lib, "_library_file_names", lambda: ["libculoss-missing-test.so"])
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert _lib.candidates() == [("system", "libculoss-missing-test.so")]
    with pytest.raises(culoss.LibraryError, match="not found") as info:
        _lib.load()
    assert "pip install" in str(info.value) and isinstance(info.value, ImportError)


def test_other_major_version_is_refused(monkeypatch, fresh):
    path = culoss.library_path() if _lib._loaded else None
    path = path or _lib.candidates()[0][1]
    monkeypatch.setattr(_lib.Library, "version_fn", lambda self: 10203)
    with pytest.raises(culoss.LibraryError, match=r"libculoss 1\.2\.3.*major version 0") as info:
        _lib.load(path)
    assert path in str(info.value)
    assert _lib._loaded is None  # nothing half-loaded stays behind


def test_same_major_other_minor_is_accepted(monkeypatch, fresh):
    path = _lib.candidates()[0][1]
    monkeypatch.setattr(_lib.Library, "version_fn", lambda self: _lib.EXPECTED_MAJOR * 10000 + 99)
    assert _lib.load(path).path == path


def test_not_a_culoss_library(fresh):
    libm = ctypes.util.find_library("m")
    if not libm:
        pytest.skip("no libm to load")
    with pytest.raises(culoss.LibraryError, match="does not export culoss_"):
        _lib.load(libm)


def test_version_of_the_real_library():
    assert culoss.library_version().split(".")[0] == str(_lib.EXPECTED_MAJOR)
    assert os.path.isfile(culoss.library_path())
