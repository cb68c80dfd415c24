"""The table of services one ``mailcrate serve`` port answers for, and the context to run them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mailcrate.datadir import DataDir
from mailcrate.services.authorize import Authorizer
from mailcrate.services.base import ServiceSpec
from mailcrate.services.cloudtrail.handlers import spec as cloudtrail_spec
from mailcrate.services.context import ServiceContext, ServiceHooks
from mailcrate.services.iam.authz import IamPolicySource
from mailcrate.services.iam.handlers import spec as iam_spec
from mailcrate.services.kms.handlers import spec as kms_spec
from mailcrate.services.s3.handlers import spec as s3_spec
from mailcrate.services.sts.handlers import spec as sts_spec
from mailcrate.services.workmail.export_jobs import HANDLERS as EXPORT_JOB_HANDLERS
from mailcrate.services.workmail.handlers import spec as workmail_spec

#: Every embedded service by its SigV4 signing name, and how its spec is built (loading its
#: botocore model, ~10-50 ms and a few MiB each).
FACTORIES: dict[str, Callable[[], ServiceSpec]] = {
    "workmail": lambda: workmail_spec(extra_handlers=EXPORT_JOB_HANDLERS),
    "kms": kms_spec,
    "iam": iam_spec,
    "sts": sts_spec,
    "s3": s3_spec,
    "cloudtrail": cloudtrail_spec,
}


def build_services() -> dict[str, ServiceSpec]:
    """Every embedded service, keyed by its SigV4 signing name (the server routes to all)."""
    return {name: factory() for name, factory in FACTORIES.items()}


class LazyServices(Mapping[str, ServiceSpec]):
    """The same table, each spec built on first use: an export worker calls three services
    and need not load the models of the other two."""

    def __init__(self) -> None:
        self._built: dict[str, ServiceSpec] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> ServiceSpec:
        spec = self._built.get(name)
        if spec is None:
            factory = FACTORIES[name]
            with self._lock:
                spec = self._built.get(name)
                if spec is None:
                    spec = self._built[name] = factory()
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(FACTORIES)

    def __len__(self) -> int:
        return len(FACTORIES)


def identity_authorizer() -> Authorizer:
    """Root may do anything in its account; everyone else as the IAM policies say."""
    return Authorizer(policies=IamPolicySource())


def service_context(
    data_dir: DataDir, *, settings: Any = None, hooks: ServiceHooks | None = None
) -> ServiceContext:
    """A context for in-process callers (an export worker): every service, the same authorizer
    as the server's."""
    return ServiceContext(
        data_dir=data_dir,
        authorizer=identity_authorizer(),
        services=LazyServices(),
        settings=settings,
        hooks=hooks or ServiceHooks(),
    )
