"""Where the function processes spend their CPU: py-spy's samples, sorted into kinds of work.

``py-spy record --subprocesses --format raw`` writes one line per distinct stack: its frames
from the outermost in, ``;``-separated, then how many samples it got. With ``--subprocesses``
the stack starts with a ``process <pid>:"<command line>"`` frame per process from the one
attached to down to the one sampled. :func:`samples_by_process` keeps the function processes'
stacks (those whose process runs the executor's ``function_bootstrap.py``) by pid;
:func:`kind_of_work` names what a stack was doing, a thread that only waits (:func:`waiting`)
left out; :func:`profile_lines` words the result.
Nothing here does I/O or asserts.

>>> kind_of_work(["main (function_bootstrap.py:1)", "Runtime.initialise (function_bootstrap.py:2)",
...               "<module> (pydantic/main.py:3)"])
'import (once per process)'
>>> kind_of_work(["Runtime._run (function_bootstrap.py:1)", "handler (app.py:2)",
...               "validate_python (pydantic/type_adapter.py:3)"])
'validation (pydantic)'
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

BOOTSTRAP: Final = "function_bootstrap.py"
"""The script every function process of the embedded executor runs."""
FUNCTION_SCRIPTS: Final = (BOOTSTRAP, "function_zygote.py")
"""What a function process's command line runs: the bootstrap, or (a forked environment) the
process it was forked from, which runs the bootstrap in it."""

IMPORT: Final = "import (once per process)"
CLIENTS: Final = "AWS clients made (once per process)"
CLIENT_CREATION: Final = ("create_client", "Session.client")
"""Frames of boto3 or botocore making a client: loading its service's model and endpoint rules."""
WAITING: Final = frozenset(
    {
        "SocketIO.readinto",
        "Channel.receive",
        "Channel.wait_for_executor_gone",
        "Condition.wait",
        "Event.wait",
        "Thread.join",
        "_worker",
        "select",
        "sleep",
    }
)
"""Innermost frames of a thread that waits (for a response, the next invocation, a lock, a
queue): py-spy without stopping the process cannot always tell such a thread idle, and its
samples are not CPU."""
KINDS: Final = (
    ("validation (pydantic)", ("pydantic/", "pydantic_core/", "annotated_types/")),
    (
        "AWS SDK and HTTP",
        ("botocore/", "boto3/", "urllib3/", "http/client.py", "socket.py", "ssl.py", "awscrt/"),
    ),
    ("logging", ("logging/", "aws_lambda_powertools/logging/")),
    ("JSON", ("json/",)),
    ("tracing and metrics", ("aws_lambda_powertools/",)),
    ("runtime (bootstrap, Chalice)", (BOOTSTRAP, "chalice/")),
    ("the services' own code", ("chalicelib/", "lambdamesh_toolkit/", "app.py")),
)
"""Kinds of work, each with the path fragments of its frames' files. A stack is the kind of its
innermost frame that names one (the first listed wins for that frame); a stack under the
bootstrap's ``Runtime.initialise`` (a cold start) or under ``importlib`` (a module imported at its
first use) is an import, whatever it called; one under boto3 making a client is
:data:`CLIENTS`."""
OTHER: Final = "other (standard library, threads)"
ONCE: Final = (IMPORT, CLIENTS)
"""Kinds of work a process does once, whatever number of invocations it then serves."""
ORDER: Final = (*ONCE, *(kind for kind, _ in KINDS), OTHER)

_PROCESS = re.compile(r'^process (\d+):"(.*)"$')
_FILE = re.compile(r"\(([^()]*?)(?::\d+)?\)$")


def waiting(frames: Sequence[str]) -> bool:
    """Whether the stack's innermost frame is a thread waiting (:data:`WAITING`)."""
    return bool(frames) and frames[-1].split(" (", 1)[0] in WAITING


def kind_of_work(frames: Sequence[str]) -> str:
    """What one sampled stack of a function process (outermost frame first) was doing."""
    if any("Runtime.initialise" in frame or "importlib._bootstrap" in frame for frame in frames):
        return IMPORT
    if any(name in frame for frame in frames for name in CLIENT_CREATION):
        return CLIENTS
    for frame in reversed(frames):
        match = _FILE.search(frame)
        path = match.group(1) if match else frame
        for kind, fragments in KINDS:
            if any(fragment in path for fragment in fragments):
                return kind
    return OTHER


def samples_by_process(raw_lines: Iterable[str]) -> dict[int, Counter[str]]:
    """The function processes' samples in py-spy's raw output, by pid and kind of work."""
    by_process: dict[int, Counter[str]] = defaultdict(Counter)
    for line in raw_lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        pid, start = None, 0
        for index, frame in enumerate(frames):  # the innermost process: a forked environment
            process = _PROCESS.match(frame)  # is a child of the process it was forked from
            if process:
                is_function = any(script in process.group(2) for script in FUNCTION_SCRIPTS)
                pid = int(process.group(1)) if is_function else None
                start = index + 1
        frames = frames[start:] if pid is not None else frames
        if pid is not None and not waiting(frames):
            by_process[pid][kind_of_work(frames)] += int(count)
    return dict(by_process)


@dataclass
class FunctionCpu:
    """One function's processes over a run: CPU, invocations, cold starts, samples by kind."""

    name: str
    invocations: int = 0
    cpu_s: float = 0.0
    cold_starts: int = 0
    samples: Counter[str] = field(default_factory=Counter)

    def split_ms(self) -> dict[str, float]:
        """The CPU (ms) in each kind of work, in proportion to the samples of each."""
        sampled = sum(self.samples.values())
        if not sampled:
            return {}
        return {kind: self.cpu_s * 1000 * n / sampled for kind, n in self.samples.items()}

    def once_ms(self) -> float:
        """CPU per cold start (ms) spent on what a process does once: importing, at start-up or
        at a module's first use, and making its AWS clients."""
        if not self.cold_starts:
            return 0.0
        split = self.split_ms()
        return sum(split.get(kind, 0.0) for kind in ONCE) / self.cold_starts

    def per_invocation_ms(self) -> dict[str, float]:
        """CPU per invocation (ms) by kind of work, what a process does once left out."""
        if not self.invocations:
            return {}
        return {
            kind: ms / self.invocations for kind, ms in self.split_ms().items() if kind not in ONCE
        }


def functions_cpu(
    names: Mapping[int, str],
    cpu_s: Mapping[int, float],
    invocations: Mapping[str, int],
    samples: Mapping[int, Counter[str]],
    started: Iterable[int],
) -> list[FunctionCpu]:
    """Per function (pids grouped by ``names``): CPU, invocations, cold starts and samples.

    ``started`` are the processes that started during the run: each is a cold start.
    """
    cold = set(started)
    functions: dict[str, FunctionCpu] = {}
    for pid, name in names.items():
        function = functions.setdefault(name, FunctionCpu(name, invocations.get(name, 0)))
        function.cpu_s += cpu_s.get(pid, 0.0)
        function.samples.update(samples.get(pid, Counter()))
        function.cold_starts += pid in cold
    return sorted(functions.values(), key=lambda f: -f.cpu_s)


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def profile_lines(functions: Sequence[FunctionCpu], orders: int) -> list[str]:
    """The per-function table and the whole system's split per order, as printed."""
    lines = [
        f"  {'function':<38} {'invokes':>7} {'CPU/invoke':>10} {'cold':>5} {'per cold start':>14}"
        "   per invocation, by kind of work (ms)"
    ]
    for function in functions:
        split = function.per_invocation_ms()
        total = sum(split.values())
        kinds = ", ".join(
            f"{kind.split(' (')[0]} {split[kind]:.1f}"
            for kind in ORDER
            if split.get(kind, 0.0) >= 0.05
        )
        lines.append(
            f"  {_short(function.name, 38):<38} {function.invocations:>7} {total:>7.1f} ms "
            f"{function.cold_starts:>5} {function.once_ms():>11.0f} ms   {kinds}"
        )
    whole: dict[str, float] = defaultdict(float)
    for function in functions:
        for kind, ms in function.split_ms().items():
            whole[kind] += ms
    spent = sum(whole.values())
    lines.append(f"  all functions, per order ({orders} orders, cold starts included):")
    for kind in ORDER:
        if whole.get(kind):
            lines.append(
                f"    {kind:<34} {whole[kind] / orders:7.1f} ms  {100 * whole[kind] / spent:5.1f} %"
            )
    return lines
