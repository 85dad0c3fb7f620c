"""Patching LocalStack modules when they are imported, only on the release they were written for.

A start-up hook that imported the module it patches would pay for it at every start, though
LocalStack imports it only when its service is first used (about a second for the Lambda
provider, two for API Gateway's). :func:`patch_when_imported` has ``wrapt`` (a dependency of
LocalStack's) call the patch when the module is imported, at once if it already is. It first
asks :func:`written_for_installed_release`: on another ``localstack-core`` release it leaves
LocalStack as it is, with a warning, rather than patch code it has not been checked against
(hooks that patch otherwise ask it themselves).
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

LOG = logging.getLogger(__name__)

EXPECTED_LOCALSTACK_VERSION: Final = "4.14.0"
"""The ``localstack-core`` release the lazily applied patches were written for."""


def written_for_installed_release(what: str) -> bool:
    """Whether the installed ``localstack-core`` is the release ``what`` was written for."""
    installed = importlib.metadata.version("localstack-core")
    if installed == EXPECTED_LOCALSTACK_VERSION:
        return True
    LOG.warning(
        "%s written for localstack-core %s, %s installed: left as it is",
        what,
        EXPECTED_LOCALSTACK_VERSION,
        installed,
    )
    return False


def patch_when_imported(patches: dict[str, Callable[[ModuleType], None]], what: str) -> None:
    """Call each patch with its module (module name → patch) when the module is imported,
    on the release the patches were written for (:func:`written_for_installed_release`)."""
    if not written_for_installed_release(what):
        return
    try:
        import wrapt
    except ImportError:  # LocalStack's own dependency (through aws-xray-sdk) gone
        LOG.warning("wrapt not installed: %s left as LocalStack has them", what)
        return
    for module_name, patch in patches.items():
        wrapt.register_post_import_hook(patch, module_name)


_wrapping = threading.Lock()

APPLIED_PATCHES: Final = "_lambdamesh_patches"
"""Attribute of a wrapper: the ``what`` of every patch wrapped into it, its own included."""


def wrap_once(
    owner: object | None,
    name: str,
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]],
    what: str,
    *,
    own: bool = False,
) -> None:
    """Replace attribute ``name`` of ``owner`` (a class or a module) with ``wrap(current)``.

    Idempotent: an attribute already wrapped for ``what`` is left as it is (the wrapper records
    the patches it carries in :data:`APPLIED_PATCHES`), while patches for other purposes stack.
    When ``owner`` is missing, or has no callable ``name``, LocalStack is
    left as it is, with a warning naming ``what`` the patch was for. With ``own``, only the
    class's own attribute counts (not one it inherits).
    """
    with _wrapping:
        if owner is None:
            current = None
        elif own:
            current = vars(owner).get(name)
        else:
            current = getattr(owner, name, None)
        if not callable(current):
            owner_name = getattr(owner, "__name__", repr(owner))
            LOG.warning("%s.%s not found: %s left as LocalStack has it", owner_name, name, what)
            return
        applied: frozenset[str] = getattr(current, APPLIED_PATCHES, frozenset())
        if what in applied:
            return
        wrapped = wrap(current)
        setattr(wrapped, APPLIED_PATCHES, applied | {what})
        # Replaced at run time on the class or module: the point of the hook.
        setattr(owner, name, wrapped)
