"""The one error root: every exception class defined in termshift derives from TermshiftError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import termshift
from termshift.errors import TermshiftError


def termshift_modules() -> list[str]:
    """The name of every module of the termshift package, subpackages included."""
    return sorted(info.name for info in pkgutil.walk_packages(termshift.__path__, "termshift."))


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined (not imported) at the top level of a termshift module."""
    found: dict[str, type[BaseException]] = {}
    for name in termshift_modules():
        module = importlib.import_module(name)  # a module that does not import fails the test
        for attribute, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                found[f"{name}.{attribute}"] = value
    return found


def test_every_module_is_walked() -> None:
    names = termshift_modules()
    assert {"termshift.errors", "termshift.trackers.fetcher", "termshift.alerts.signing",
            "termshift.archive_repo.log_reader", "termshift.web.error_pages"} <= set(names)
    assert "termshift.trackers.errors" not in names  # the root moved to termshift.errors: no second home


def test_every_exception_class_derives_from_termshift_error() -> None:
    classes = exception_classes()
    assert len(classes) >= 30  # the walk found the package's errors, not an empty list
    strays = sorted(name for name, cls in classes.items() if not issubclass(cls, TermshiftError))
    assert strays == [], f"derive these from termshift.errors.TermshiftError: {strays}"


def test_errors_keep_the_built_in_base_callers_catch() -> None:
    # A second base stays where code or tests catch the built-in class.
    from termshift.archive_repo import InvalidRecordError
    from termshift.archive_repo.blob_reader import MissingObject
    from termshift.config import ConfigError
    from termshift.locking import RunLockBusy

    assert issubclass(InvalidRecordError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(RunLockBusy, RuntimeError) and issubclass(MissingObject, KeyError)
