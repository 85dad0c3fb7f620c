"""Patching LocalStack modules when they are imported, only on the release they were written for.

A start-up hook that imported the module it patches would pay for it at every start, though
LocalStack imports it only when its service is first used (about a second for the Lambda
provider, two for API Gateway's). :func:`patch_when_imported` has ``wrapt`` (a dependency of
LocalStack's) call the patch when the module is imported, at once if it already is. Each hook
first asks :func:`written_for_installed_release`: on another ``localstack-core`` release it
leaves LocalStack as it is, with a warning, rather than patch code it has not been checked
against.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Final

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
    """Call each patch with its module (module name → patch) when the module is imported."""
    try:
        import wrapt
    except ImportError:  # LocalStack's own dependency (through aws-xray-sdk) gone
        LOG.warning("wrapt not installed: %s left as LocalStack has them", what)
        return
    for module_name, patch in patches.items():
        wrapt.register_post_import_hook(patch, module_name)
