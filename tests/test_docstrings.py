"""The examples in dctnet's docstrings run as written."""

import doctest
import importlib
import pkgutil

import pytest

import dctnet
import dctnet.kernels

# the kernels are installed from their own folder: walk them too (not the CUDA twins, which need CUDA or its simulator)
MODULES = sorted(m.name for m in pkgutil.walk_packages(dctnet.__path__, "dctnet.")) + sorted(
    m.name for m in pkgutil.iter_modules(dctnet.kernels.__path__, "dctnet.kernels.") if not m.name.endswith("_cuda"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failed == 0, f"{failed} docstring example(s) of {name} failed (printed above)"
