"""Shapes of the API's requests and responses. Held to the server's schemas
(``schemas.json``, generated from them) by the SDK's tests."""
from __future__ import annotations

from typing import Dict, List, Literal, Optional, TypedDict, Union

JobStatus = Literal["queued", "running", "succeeded", "failed", "timeout", "oom", "cancelled", "error"]
FINAL_STATUSES = frozenset({"succeeded", "failed", "timeout", "oom", "cancelled", "error"})


class JobFile(TypedDict):
    path: str
    content: str


class Limits(TypedDict, total=False):
    timeoutMs: int  # wall-clock limit, milliseconds
    memoryMb: int  # memory limit, MiB
    cpus: float  # CPU limit, cores
    pids: int  # processes and threads at once
    outputBytes: int  # cap of stdout and of stderr, each, bytes
    compileTimeoutMs: int  # the compile step's limit (compiled runtimes), milliseconds


class JobRequest(TypedDict, total=False):
    runtime: str
    source: str
    files: List[JobFile]
    entrypoint: str
    args: List[str]
    stdin: str
    env: Dict[str, str]
    limits: Limits
    tests: List["TestCase"]  # run once per case, after one compile
    isolation: Literal["gvisor", "runc"]  # runc: benchmark tenants only (AIRLOCK_BENCH_TENANTS)


class TestCase(TypedDict, total=False):
    stdin: str
    args: List[str]  # instead of the job's args
    expectedOutput: str  # compared trailing-whitespace-insensitively, outside the sandbox


class _IsolationSince(TypedDict, total=False):
    # Absent in records from before the seccomp profile.
    seccomp: str


class Isolation(_IsolationSince):
    technology: str
    runtime: str
    version: str
    platform: str
    network: str
    readOnlyRoot: bool
    uid: int
    capabilities: List[str]


class Timings(TypedDict):
    queuedMs: Optional[int]
    startupMs: Optional[int]
    runMs: Optional[int]
    bootMs: Optional[int]  # within startupMs when cold; before the job arrived when warm
    exitToResultMs: Optional[int]  # program ended to its result stored


class Artifact(TypedDict):
    path: str  # relative to /workspace/out
    bytes: int
    contentType: str


class CompileResult(TypedDict):
    status: Literal["succeeded", "failed", "timeout"]
    exitCode: Optional[int]
    signal: Optional[str]
    timeMs: Optional[int]
    stdout: str  # the compiler's, kept apart from the program's
    stderr: str
    truncated: bool


class TestResult(TypedDict):
    status: Literal["passed", "wrong-answer", "runtime-error", "timeout"]
    exitCode: Optional[int]
    signal: Optional[str]
    timeMs: Optional[int]
    stdout: str  # its first bytes; the job's stdout has all of every case's, in order
    stderr: str
    truncated: bool
    stdoutBytes: int
    stderrBytes: int
    matched: Optional[bool]  # None without expectedOutput
    memoryKb: Optional[int]  # None: not measured


class Job(TypedDict):
    id: str
    runtime: str
    status: JobStatus
    exitCode: Optional[int]
    signal: Optional[str]
    reason: Optional[str]
    stdout: str
    stderr: str
    truncated: bool
    createdAt: str
    startedAt: Optional[str]
    finishedAt: Optional[str]
    timings: Timings
    sandboxStart: Optional[Literal["warm", "cold"]]
    executor: Optional[str]
    isolation: Optional[Isolation]
    artifacts: List[Artifact]
    compile: Optional[CompileResult]  # compiled runtimes
    tests: List[TestResult]  # one per test case that ran


class JobSummary(TypedDict):
    id: str
    runtime: str
    status: JobStatus
    exitCode: Optional[int]
    reason: Optional[str]
    createdAt: str
    startedAt: Optional[str]
    finishedAt: Optional[str]


class JobList(TypedDict):
    items: List[JobSummary]
    nextCursor: Optional[str]


class JobAccepted(TypedDict):
    id: str
    status: JobStatus


class ErrorResponse(TypedDict, total=False):
    statusCode: int
    code: str
    message: str
    details: List[Dict[str, str]]


class JobBatchItem(TypedDict, total=False):
    """One job of a batch: ``id`` and ``status`` when accepted (``replayed`` when the batch's
    Idempotency-Key had made it already), ``error`` (as a single submit would have answered) when refused."""
    index: int
    id: str
    status: JobStatus
    replayed: bool
    error: ErrorResponse


class JobBatchResult(TypedDict):
    accepted: int
    refused: int
    items: List[JobBatchItem]


class LogEvent(TypedDict):
    type: Literal["log"]
    stream: Literal["stdout", "stderr"]
    data: str
    seq: int
    ts: str


class StepEvent(TypedDict):
    type: Literal["step"]
    step: Literal["compile", "run", "test"]  # which step started
    index: int  # 0 for the compile; runs and test cases from 1
    seq: int
    ts: str


class StatusEvent(TypedDict):
    type: Literal["status"]
    status: JobStatus
    seq: int
    ts: str


class EndEvent(TypedDict):
    type: Literal["end"]
    job: Job
    seq: int
    ts: str


JobEvent = Union[LogEvent, StepEvent, StatusEvent, EndEvent]


class Runtime(TypedDict):
    name: str
    description: str
    version: Optional[str]
    defaultEntrypoint: str
    compiled: bool
