"""The table of services one ``mailcrate serve`` port answers for."""

from __future__ import annotations

from mailcrate.services.base import ServiceSpec
from mailcrate.services.iam.handlers import spec as iam_spec
from mailcrate.services.kms.handlers import spec as kms_spec
from mailcrate.services.s3.handlers import spec as s3_spec
from mailcrate.services.sts.handlers import spec as sts_spec
from mailcrate.services.workmail.export_jobs import HANDLERS as EXPORT_JOB_HANDLERS
from mailcrate.services.workmail.handlers import spec as workmail_spec


def build_services() -> dict[str, ServiceSpec]:
    """Every embedded service, keyed by its SigV4 signing name."""
    specs = [workmail_spec(extra_handlers=EXPORT_JOB_HANDLERS), kms_spec(), iam_spec(), sts_spec(), s3_spec()]
    return {spec.name: spec for spec in specs}
