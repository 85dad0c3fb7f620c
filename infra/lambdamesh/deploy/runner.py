"""The deploy run: the topology stacks (shared, messaging), then every app in dependency order."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.deploy.artifacts import KEY_PREFIX, package_key, upload_package
from lambdamesh.deploy.fingerprint import stack_fingerprint
from lambdamesh.deploy.packaging import PackagedApp, PackagingError, package_app
from lambdamesh.deploy.records import ServiceRecord, save_services
from lambdamesh.deploy.services import MESSAGING, SHARED, ServiceApp, discover_apps
from lambdamesh.deploy.stacks import (
    EMULATOR_POLL_INTERVAL_S,
    POLL_INTERVAL_S,
    StackError,
    StackRequest,
    StackResult,
    apply_stack,
    describe_stack,
    is_current,
    stack_outputs,
)
from lambdamesh.deploy.target import Target
from lambdamesh.deploy.template import (
    UnknownQueueError,
    declared_parameters,
    has_rest_api,
    prepare_template,
)
from lambdamesh.deploy.wiring import DeployedStack, UnresolvedParameterError, resolve_parameters

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_s3.client import S3Client

Progress = Callable[[str], None]

BUCKET_OUTPUT = "DeploymentBucket"
"""The shared stack's Output naming the bucket packages are uploaded to."""


NAME_PREFIX_PARAMETER = "NamePrefix"
"""A topology template's parameter that receives the stack prefix (topic and queue names)."""

MESSAGING_TEMPLATE_NAME = "messaging.json"
"""The messaging topology's template, looked for beside the shared template by default."""

SEED_OUTPUT = "SeedFunctionName"
"""A stack Output naming a function to invoke once after the stack is created or updated."""


class DeployError(RuntimeError):
    """A deploy step failed; the message says which service and why."""


@dataclass(frozen=True)
class DeployOptions:
    """What to deploy and where to keep local files.

    Attributes
    ----------
    apps_dir
        Holds the Chalice apps (``functions/``).
    shared_template
        The shared stack's template (``infra/topology/shared.json``).
    cache_dir
        Package cache (``.lambdamesh/deploy/packages``).
    state_dir
        Where ``deployments.json`` is written.
    stack_prefix
        Stacks are named ``<prefix>-<service>``; the messaging topology's topics and queues
        ``<prefix>-<name>``. The apps' SQS handlers name ``lambdamesh-`` queues; each is
        given to its function as the messaging stack's Output of the same queue
        (:func:`~lambdamesh.deploy.template.queue_output_key`), so the apps consume the queues
        deployed under the same prefix.
    only
        Deploy only these services (the topology stacks always); ``None`` for all.
    messaging_template
        The messaging stack's template; ``None``: ``messaging.json`` beside
        ``shared_template``, deployed when that file exists.
    """

    apps_dir: Path
    shared_template: Path
    cache_dir: Path
    state_dir: Path
    stack_prefix: str = "lambdamesh"
    only: frozenset[str] | None = None
    messaging_template: Path | None = None

    def stack_name(self, service: str) -> str:
        """The stack of ``service``."""
        return f"{self.stack_prefix}-{service}"

    def topology(self) -> list[tuple[str, Path]]:
        """The stacks without an app, in deploy order: (service name, template)."""
        messaging = self.messaging_template or self.shared_template.with_name(
            MESSAGING_TEMPLATE_NAME
        )
        stacks = [(SHARED, self.shared_template)]
        if self.messaging_template is not None or messaging.is_file():
            stacks.append((MESSAGING, messaging))
        return stacks


@dataclass(frozen=True)
class ServiceReport:
    """What deploy did for one stack.

    Attributes
    ----------
    service
        Service name (``shared`` and ``messaging`` for the topology stacks).
    stack
        Stack name.
    action
        ``created``, ``updated``, ``unchanged`` or ``skipped`` (fingerprint equal).
    packaging
        ``built``, ``cached``, or ``None`` (the topology stacks have no package).
    uploaded
        Whether a package was uploaded this run.
    api_url
        Base URL of the service's REST API, if any.
    functions
        Logical id → physical function name.
    source_hash
        The fingerprint the stack is tagged with (``lambdamesh:source-hash``).
    seconds
        Wall time spent on it.
    """

    service: str
    stack: str
    action: str
    packaging: str | None
    uploaded: bool
    api_url: str | None
    functions: dict[str, str]
    source_hash: str
    seconds: float


@dataclass(frozen=True)
class DeployReport:
    """The outcome of a run.

    Attributes
    ----------
    target
        Where it deployed (endpoint URL or ``aws:<region>``).
    services
        One report per stack, in deploy order, the topology stacks (shared, messaging) first.
    records_file
        The ``deployments.json`` written.
    seconds
        Wall time of the run.
    """

    target: str
    services: list[ServiceReport] = field(default_factory=list)
    records_file: Path | None = None
    seconds: float = 0.0

    def service(self, name: str) -> ServiceReport:
        """The report of service ``name``."""
        for report in self.services:
            if report.service == name:
                return report
        raise KeyError(name)

    def api_base_url(self, name: str) -> str:
        """The base URL of service ``name``'s REST API, without the trailing ``/``.

        Raises
        ------
        DeployError
            When the service has no REST API.
        """
        url = self.service(name).api_url
        if url is None:
            raise DeployError(f"service {name} has no API URL in the deploy report")
        return url.rstrip("/")


def deploy_all(target: Target, options: DeployOptions, progress: Progress = print) -> DeployReport:
    """Deploy the shared and messaging stacks, then every app in dependency order.

    Parameters
    ----------
    target
        LocalStack endpoint or AWS.
    options
        Apps, templates, caches and names.
    progress
        Receives human-readable progress lines.

    Returns
    -------
    DeployReport
        Per stack (the topology stacks first): what was done, API URL and function names.

    Raises
    ------
    DeployError
        On the first failing step (packaging, wiring, upload or stack); stacks deployed before
        it stay deployed and recorded.
    """
    started = time.monotonic()
    apps = discover_apps(options.apps_dir, options.only)
    cfn: CloudFormationClient = target.client("cloudformation")
    s3: S3Client = target.client("s3")
    report = DeployReport(target.label)
    deployed: dict[str, DeployedStack] = {}
    records_file: Path | None = None
    try:
        for service, template_file in options.topology():
            topology_report, topology_stack = _deploy_topology(
                cfn, service, template_file, deployed, options, progress, poll_interval(target)
            )
            report.services.append(topology_report)
            deployed[service] = topology_stack
        bucket = deployed[SHARED].outputs[BUCKET_OUTPUT]
        packages = package_all(apps, options.cache_dir, target.region, progress)
        for app in apps:
            service_report, stack = _deploy_app(
                target, cfn, s3, bucket, app, packages[app.name], deployed, options, progress
            )
            report.services.append(service_report)
            deployed[app.name] = stack
            records_file = _record(options, target, service_report, stack)
    except (PackagingError, StackError, UnresolvedParameterError, UnknownQueueError) as error:
        raise DeployError(str(error)) from error
    except (ClientError, BotoCoreError) as error:
        raise DeployError(f"{target.label}: {error}") from error
    return DeployReport(
        target.label,
        report.services,
        records_file,
        round(time.monotonic() - started, 3),
    )


def package_all(
    apps: Sequence[ServiceApp], cache_dir: Path, region: str, progress: Progress
) -> dict[str, PackagedApp]:
    """Package every app (or take it from the cache), as many at once as there are CPUs.

    ``chalice package`` runs in a process of its own, so threads are enough to run them side
    by side; a fresh checkout's seven packages take half the time on two cores.

    Raises
    ------
    PackagingError
        For the first app, in deploy order, that does not package.
    """
    workers = max(1, min(len(apps), os.cpu_count() or 1))
    if apps:
        progress(f"==> packaging {len(apps)} app(s), {workers} at a time (cached when unchanged)")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="package") as pool:
        futures = {app.name: pool.submit(package_app, app, cache_dir, region) for app in apps}
    return {name: future.result() for name, future in futures.items()}


def poll_interval(target: Target) -> float:
    """How often a stack is read while it settles: briefly on an emulator, as before on AWS."""
    return EMULATOR_POLL_INTERVAL_S if target.is_localstack else POLL_INTERVAL_S


def topology_parameters(
    service: str,
    template: dict[str, Any],
    deployed: Mapping[str, DeployedStack],
    stack_prefix: str,
) -> dict[str, str]:
    """A topology stack's parameters: the name prefix, and Outputs of the stacks before it.

    Parameters
    ----------
    service
        The topology stack's service name (``messaging``).
    template
        Its template.
    deployed
        The stacks deployed before it.
    stack_prefix
        Given to a ``NamePrefix`` parameter, so that topic and queue names follow the stacks'.
    """
    declared = dict(declared_parameters(template))
    given = {NAME_PREFIX_PARAMETER: stack_prefix} if NAME_PREFIX_PARAMETER in declared else {}
    declared.pop(NAME_PREFIX_PARAMETER, None)
    return {**given, **resolve_parameters(service, declared, deployed)}


def _deploy_topology(
    cfn: CloudFormationClient,
    service: str,
    template_file: Path,
    deployed: dict[str, DeployedStack],
    options: DeployOptions,
    progress: Progress,
    poll_interval_s: float,
) -> tuple[ServiceReport, DeployedStack]:
    started = time.monotonic()
    template: dict[str, Any] = json.loads(template_file.read_text())
    parameters = topology_parameters(service, template, deployed, options.stack_prefix)
    name = options.stack_name(service)
    progress(f"==> {service}: stack {name}")
    request = StackRequest(name, template, parameters, stack_fingerprint(template, parameters))
    result = apply_stack(cfn, request, progress=progress, poll_interval_s=poll_interval_s)
    progress(f"    {result.action}")
    report = ServiceReport(
        service,
        name,
        result.action,
        None,
        False,
        None,
        {},
        request.fingerprint,
        round(time.monotonic() - started, 3),
    )
    return report, DeployedStack(service, result.outputs)


@dataclass(frozen=True)
class PreparedAppStack:
    """An app packaged, its template prepared and its parameters wired: what deploy sends.

    Attributes
    ----------
    packaged
        The package (``chalice package``, cached).
    key
        Where the package goes in the deployment bucket.
    template
        The prepared template (:func:`~lambdamesh.deploy.template.prepare_template`).
    parameters
        The stack's parameters, from the stacks before it.
    """

    packaged: PackagedApp
    key: str
    template: dict[str, Any]
    parameters: dict[str, str]


def prepare_app_stack(
    app: ServiceApp,
    deployed: Mapping[str, DeployedStack],
    bucket: str,
    cache_dir: Path,
    region: str,
    packaged: PackagedApp | None = None,
) -> PreparedAppStack:
    """Package ``app`` (unless ``packaged`` already), prepare its template and wire its
    parameters from ``deployed``.

    The one way an app's stack is made, by a deploy and by a dry run (whose ``deployed`` stacks
    name their outputs instead of holding them).

    Raises
    ------
    PackagingError, UnknownQueueError, UnresolvedParameterError
        When the app does not package, names a queue the messaging stack lacks, or needs a
        parameter no stack before it provides.
    """
    packaged = packaged or package_app(app, cache_dir, region)
    key = package_key(app.name, packaged.package_file)
    messaging = deployed.get(MESSAGING)
    template = prepare_template(
        json.loads(packaged.template_file.read_text()),
        bucket,
        key,
        queue_outputs=messaging.outputs.keys() if messaging is not None else (),
    )
    parameters = resolve_parameters(app.name, declared_parameters(template), deployed)
    return PreparedAppStack(packaged, key, template, parameters)


def _deploy_app(
    target: Target,
    cfn: CloudFormationClient,
    s3: S3Client,
    bucket: str,
    app: ServiceApp,
    packaged: PackagedApp,
    deployed: dict[str, DeployedStack],
    options: DeployOptions,
    progress: Progress,
) -> tuple[ServiceReport, DeployedStack]:
    started = time.monotonic()
    name = options.stack_name(app.name)
    progress(f"==> {app.name}: stack {name}")
    prepared = prepare_app_stack(
        app, deployed, bucket, options.cache_dir, target.region, packaged=packaged
    )
    packaged, key = prepared.packaged, prepared.key
    template, parameters = prepared.template, prepared.parameters
    progress(
        f"    package {'reused' if packaged.reused else 'built'} ({packaged.source_hash[:12]})"
    )
    fingerprint = stack_fingerprint(template, parameters)
    existing = describe_stack(cfn, name)
    uploaded = False
    if existing is not None and is_current(existing, fingerprint):
        result = StackResult(name, "skipped", stack_outputs(existing))
    else:
        # Uploaded whenever the stack changes, not only when the zip is new: the bucket's
        # lifecycle rule may have expired an old package that the template still names.
        uploaded = upload_package(s3, bucket, key, packaged.package_file)
        result = apply_stack(
            cfn,
            StackRequest(name, template, parameters, fingerprint),
            progress=progress,
            upload_template=lambda body: _upload_template(target, s3, bucket, app.name, body),
            poll_interval_s=poll_interval(target),
        )
    if result.action != "skipped" and SEED_OUTPUT in result.outputs:
        _seed(target, result.outputs[SEED_OUTPUT], progress)
    api_url = _api_url(target, app, template, result.outputs)
    functions = _functions(cfn, name)
    progress(f"    {result.action}" + (f"  {api_url}" if api_url else ""))
    report = ServiceReport(
        app.name,
        name,
        result.action,
        "cached" if packaged.reused else "built",
        uploaded,
        api_url,
        functions,
        fingerprint,
        round(time.monotonic() - started, 3),
    )
    return report, DeployedStack(app.name, result.outputs, api_url)


def _seed(target: Target, function_name: str, progress: Progress) -> None:
    """Invoke a stack's seed function (idempotent reference data) after it changed."""
    response = target.client("lambda").invoke(FunctionName=function_name, Payload=b"{}")
    answer = response["Payload"].read().decode(errors="replace")
    if response.get("FunctionError"):
        raise DeployError(f"seed function {function_name} failed: {answer}")
    progress(f"    seeded ({function_name}): {answer[:120]}")


def _api_url(
    target: Target, app: ServiceApp, template: dict[str, Any], outputs: dict[str, str]
) -> str | None:
    api_id = outputs.get("RestAPIId")
    if not has_rest_api(template) or not api_id:
        return None
    return target.api_url(api_id, app.api_stage())


def _functions(cfn: CloudFormationClient, stack_name: str) -> dict[str, str]:
    functions: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Lambda::Function":
                functions[resource["LogicalResourceId"]] = resource.get("PhysicalResourceId", "")
    return functions


def _upload_template(target: Target, s3: S3Client, bucket: str, service: str, body: str) -> str:
    key = f"{KEY_PREFIX}/{service}/templates/{hashlib.sha256(body.encode()).hexdigest()}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    if target.endpoint_url is not None:
        return f"{target.endpoint_url}/{bucket}/{key}"
    return f"https://{bucket}.s3.{target.region}.amazonaws.com/{key}"


def _record(
    options: DeployOptions, target: Target, report: ServiceReport, stack: DeployedStack
) -> Path:
    record = ServiceRecord(
        stack=report.stack,
        api_url=report.api_url,
        functions=report.functions,
        outputs=dict(stack.outputs),
        source_hash=report.source_hash,
        deployed_at=time.time(),
    )
    return save_services(options.state_dir, target.label, {report.service: record})
