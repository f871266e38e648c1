"""Load one of the formula's Salt modules from its file, for unit tests."""

import importlib.util
import pathlib


def load_salt_module(path: pathlib.Path, name: str):
    """A fresh module object for ``path``; the test injects the Salt dunders."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
