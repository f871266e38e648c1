"""Load one of the formula's Salt modules from its file, for unit tests."""

import importlib.util
import pathlib


def load_salt_module(path: pathlib.Path, name: str):
    """A fresh module object for ``path``; the test injects the Salt dunders."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPO = pathlib.Path(__file__).resolve().parents[2]


def load_utils():
    """``__utils__`` as Salt builds it from the formula's ``_utils/``:
    ``{"<module>.<function>": function}``."""
    utils = {}
    for path in sorted((REPO / "_utils").glob("*.py")):
        module = load_salt_module(path, f"{path.stem}_utils_under_test")
        for name, value in vars(module).items():
            if (
                callable(value)
                and not name.startswith("_")
                and getattr(value, "__module__", "") == module.__name__
            ):
                utils[f"{path.stem}.{name}"] = value
    return utils


FORMULA_DIRS = ("_modules", "_states", "_utils", "_beacons")


def formula_root(directory: pathlib.Path, name: str = "mail") -> pathlib.Path:
    """A Salt file root holding only the formula (``name`` links to ``mail/``),
    as bin/apply makes it: Salt walks every file root on each run, and the
    repository also holds virtualenvs."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for link, target in ((name, "mail"), *((d, d) for d in FORMULA_DIRS)):
        path = directory / link
        if not path.is_symlink():
            path.symlink_to(REPO / target, target_is_directory=True)
    return directory
