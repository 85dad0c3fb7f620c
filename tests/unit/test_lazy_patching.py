"""A LocalStack method is wrapped once, and left as it is (with a warning) when it is missing."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from lambdamesh_localstack.lazy_patching import patch_when_imported, wrap_once


def _counting(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapped(*args: Any) -> Any:
        return ("wrapped", method(*args))

    return wrapped


def test_a_method_is_wrapped_once_however_often_the_patch_runs() -> None:
    # GIVEN a class with a method
    class Provider:
        def invoke(self) -> Any:
            return "invoked"

    # WHEN it is wrapped twice
    wrap_once(Provider, "invoke", _counting, "test patch")
    wrap_once(Provider, "invoke", _counting, "test patch")
    # THEN the wrapper runs once around the original
    assert Provider().invoke() == ("wrapped", "invoked")


def test_patches_for_different_purposes_stack_and_each_is_applied_once() -> None:
    # GIVEN a function of a module that two patches wrap (as the OpenAPI import is)
    class Module:
        @staticmethod
        def import_api() -> Any:
            return "imported"

    # WHEN each patch runs twice, in turns
    for _ in range(2):
        wrap_once(Module, "import_api", _counting, "gateway responses")
        wrap_once(Module, "import_api", _counting, "IAM authorisation")
    # THEN each wraps it once, the second around the first
    assert Module.import_api() == ("wrapped", ("wrapped", "imported"))


def test_an_inherited_method_is_left_alone_when_only_the_classs_own_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a class inheriting the method it would wrap
    class Base:
        def __call__(self) -> str:
            return "base"

    class Parser(Base):
        pass

    # WHEN only its own attribute may be wrapped
    with caplog.at_level(logging.WARNING):
        wrap_once(Parser, "__call__", _counting, "body limit", own=True)
    # THEN nothing changes and the warning says what was left out
    assert Parser()() == "base"
    assert "Parser.__call__ not found: body limit left as LocalStack has it" in caplog.text


def test_a_missing_owner_leaves_everything_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN / WHEN the class to patch is not there
    with caplog.at_level(logging.WARNING):
        wrap_once(None, "invoke", _counting, "payload limits")
    # THEN a warning names the patch
    assert "payload limits left as LocalStack has it" in caplog.text


@pytest.mark.parametrize(("installed", "patched"), [("4.14.0", True), ("4.13.2", False)])
def test_a_module_is_patched_when_imported_only_on_the_release_the_patch_was_written_for(
    installed: str, patched: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an installed localstack-core release and a module imported already
    monkeypatch.setattr(importlib.metadata, "version", lambda _: installed)
    name = f"lambdamesh_test_target_{installed.replace('.', '_')}"
    monkeypatch.setitem(sys.modules, name, ModuleType(name))
    seen: list[ModuleType] = []
    # WHEN a patch is registered for it
    patch_when_imported({name: seen.append}, "a test patch")
    # THEN it was applied at once on the release it was written for, and not on another
    assert [module.__name__ for module in seen] == ([name] if patched else [])
