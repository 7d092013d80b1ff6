"""The examples in dctnet's docstrings run as written."""

import doctest
import importlib
import pkgutil

import pytest

import dctnet

MODULES = sorted(m.name for m in pkgutil.walk_packages(dctnet.__path__, "dctnet."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failed == 0, f"{failed} docstring example(s) of {name} failed (printed above)"
