"""Airlock: run untrusted code in gVisor sandboxes.

    from airlock import Airlock
    with Airlock() as airlock:  # AIRLOCK_URL, AIRLOCK_API_KEY
        job = airlock.run({"runtime": "python", "source": "print(6 * 7)"})
"""
from ._client import Airlock, AsyncAirlock, AsyncJobs, Jobs
from ._errors import (
    AirlockError,
    AuthenticationError,
    ConflictError,
    ConnectionError,
    ForbiddenError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
    UnavailableError,
    ValidationError,
    error_from_response,
)
from ._types import FINAL_STATUSES, Job, JobBatchResult, JobEvent, JobList, JobRequest, JobStatus, JobSummary, Runtime

__all__ = [
    "Airlock", "AsyncAirlock", "Jobs", "AsyncJobs",
    "AirlockError", "AuthenticationError", "ConflictError", "ConnectionError", "ForbiddenError", "NotFoundError", "RateLimitError",
    "ServerError", "TimeoutError", "UnavailableError", "ValidationError", "error_from_response",
    "FINAL_STATUSES", "Job", "JobBatchResult", "JobEvent", "JobList", "JobRequest", "JobStatus", "JobSummary", "Runtime",
]
