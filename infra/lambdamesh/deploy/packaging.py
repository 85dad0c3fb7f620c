"""``chalice package`` for one app, cached by the hash of its sources."""

from __future__ import annotations

import compileall
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lambdamesh.deploy.fingerprint import source_hash
from lambdamesh.deploy.services import STAGE, ServiceApp
from lambdamesh.emulator.locking import file_lock

TEMPLATE_NAME = "sam.json"
PACKAGE_NAME = "deployment.zip"


class PackagingError(RuntimeError):
    """``chalice package`` failed; the message holds its output."""


@dataclass(frozen=True)
class PackagedApp:
    """A packaged app: Chalice's SAM template and the zip its functions run from.

    Attributes
    ----------
    directory
        Holds ``sam.json`` and ``deployment.zip``.
    source_hash
        The hash of the sources it was built from.
    reused
        True when it came from the cache (no ``chalice package`` ran).
    """

    directory: Path
    source_hash: str
    reused: bool

    @property
    def template_file(self) -> Path:
        """The SAM template."""
        return self.directory / TEMPLATE_NAME

    @property
    def package_file(self) -> Path:
        """The deployment package."""
        return self.directory / PACKAGE_NAME


def chalice_executable() -> Path:
    """The ``chalice`` of the interpreter running this code (the project venv's)."""
    beside = Path(sys.executable).with_name("chalice")
    if beside.is_file():
        return beside
    found = shutil.which("chalice")
    if found is None:
        raise PackagingError("chalice is not installed in this environment")
    return Path(found)


def build_inputs() -> tuple[str, ...]:
    """Inputs of a build besides the app's files: they too change the package."""
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"chalice=={metadata.version('chalice')}",
        runtime,
        f"stage={STAGE}",
        "bytecode=unchecked-hash",
    )


def package_app(app: ServiceApp, cache_dir: Path, region: str) -> PackagedApp:
    """Package ``app`` with ``chalice package --merge-template``, or reuse the cached package.

    Parameters
    ----------
    app
        The app.
    cache_dir
        Packages live in ``cache_dir/<service>/<source hash>/``; older ones of the same
        service are removed after a new build.
    region
        ``AWS_DEFAULT_REGION`` for Chalice, which refuses to package without one.

    Raises
    ------
    PackagingError
        When ``chalice package`` fails.
    """
    digest = source_hash(app.path, *build_inputs())
    service_cache = cache_dir / app.name
    target = service_cache / digest
    if _complete(target):
        return PackagedApp(target, digest, reused=True)
    # One build of an app at a time on this machine (two deploys, or a test session per
    # worker): Chalice builds in the app's own `.chalice/deployments`, which two concurrent
    # `chalice package` runs would write at once. The second finds the first's package.
    with file_lock(service_cache.with_name(f".{app.name}.lock")):
        if _complete(target):
            return PackagedApp(target, digest, reused=True)
        return _build(app, service_cache, target, digest, region)


def _complete(entry: Path) -> bool:
    """Whether a cache entry holds both the template and the package."""
    return (entry / TEMPLATE_NAME).is_file() and (entry / PACKAGE_NAME).is_file()


def _build(
    app: ServiceApp, service_cache: Path, target: Path, digest: str, region: str
) -> PackagedApp:
    service_cache.mkdir(parents=True, exist_ok=True)
    # Build beside the cache entry and rename into place: a crash never leaves a half entry.
    with tempfile.TemporaryDirectory(dir=service_cache, prefix=".build-") as scratch:
        output = Path(scratch) / "out"
        _run_chalice_package(app, output, region)
        add_bytecode(output / PACKAGE_NAME)
        for stale in service_cache.iterdir():
            if stale.is_dir() and not stale.name.startswith(".") and stale != target:
                shutil.rmtree(stale, ignore_errors=True)
        try:
            output.rename(target)
        except OSError:
            # Built meanwhile by a process that does not take the lock (an older lambdamesh):
            # its package is this one.
            if not _complete(target):
                raise
    return PackagedApp(target, digest, reused=False)


def add_bytecode(package: Path) -> None:
    """Add compiled bytecode (``__pycache__/*.pyc``) for every module of a package zip.

    Lambda's ``/var/task`` is read-only, so a package without bytecode compiles every module it
    imports on every cold start (measured for a service handler: ≈ 620 ms of imports without,
    ≈ 220 ms with). Chalice does not compile; ``unchecked-hash`` pycs stay valid whatever the
    timestamps the zip round trip gives the sources. The interpreter running this is the
    runtime's version (``build_inputs`` records it), so the bytecode matches.
    """
    with tempfile.TemporaryDirectory(prefix="lambdamesh-pyc-") as scratch:
        root = Path(scratch)
        with zipfile.ZipFile(package) as archive:
            archive.extractall(root)
        compileall.compile_dir(
            root,
            quiet=1,
            workers=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        rebuilt = package.with_name(package.name + ".tmp")
        with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
        rebuilt.replace(package)


def _run_chalice_package(app: ServiceApp, output: Path, region: str) -> None:
    command = [str(chalice_executable()), "--project-dir", str(app.path), "package"]
    if app.merge_template is not None:
        command += ["--merge-template", str(app.merge_template)]
    command += ["--stage", STAGE, str(output)]
    # Packaging is a local build: it must not fail on the user's AWS profile (Chalice opens a
    # boto session, which refuses a profile it cannot find), so none is passed on.
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")},
        "AWS_DEFAULT_REGION": region,
    }
    completed = subprocess.run(
        command, env=environment, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise PackagingError(
            f"chalice package failed for {app.name} (exit {completed.returncode}):\n"
            f"{completed.stdout}{completed.stderr}".rstrip()
        )
