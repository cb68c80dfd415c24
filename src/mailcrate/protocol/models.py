"""botocore's service models: the single source of truth for every wire shape.

Loading a model costs a few milliseconds of JSON parsing, so each process loads a service once
and keeps it (an immutable value, safe to share between threads).
"""

from __future__ import annotations

from functools import cache

import botocore.session
from botocore.model import OperationModel, ServiceModel


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(name: str) -> ServiceModel:
    """The botocore model of an AWS service, e.g. ``workmail``, ``iam``, ``s3``."""
    return _session().get_service_model(name)


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


@cache
def operation_names(service: str) -> frozenset[str]:
    return frozenset(service_model(service).operation_names)
