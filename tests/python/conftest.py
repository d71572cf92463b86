import os
import sys

import numpy as np
import pytest

try:
    import culoss  # the installed package (pip install ./bindings/python)
except ImportError:  # a source checkout: use bindings/python (with CULOSS_LIBRARY set)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bindings", "python"))
    import culoss

sys.path.insert(0, os.path.dirname(__file__))
from capi import CApi  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "distributed: runs several processes with "
                            "torch.distributed (deselect with -m 'not distributed')")


def pytest_report_header(config):
    try:
        lib = "%s (%s)" % (culoss.library_path(), culoss.library_version())
    except Exception as exc:  # reported, and the tests then fail loudly
        lib = "NOT LOADED: %s" % exc
    return ["culoss package: %s" % os.path.dirname(culoss.__file__), "libculoss: %s" % lib]


@pytest.fixture(scope="session")
def capi():
    return CApi(culoss.library_path())


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def optional_import(name):
    """The module, or None when it is not installed (or fails to import)."""
    try:
        return __import__(name, fromlist=["_"])
    except Exception:
        return None
