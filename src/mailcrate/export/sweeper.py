"""Aborting the multipart uploads that failed and cancelled jobs left open.

An attempt aborts its upload when it fails or is stopped; when S3 refuses or cannot take that
abort (down, throttling, a role policy without ``s3:AbortMultipartUpload``), the upload id stays
recorded with the job (:func:`mailcrate.jobs.store.keep_upload`) instead of being forgotten with
its parts still stored. Each worker process sweeps now and then: it takes the due ones
(:func:`mailcrate.jobs.store.uploads_to_abort`, pacing each with a doubling wait), assumes the
job's role again and aborts, on the embedded S3 and on an external one alike.
"""

from __future__ import annotations

import logging

from mailcrate.export.destination import open_for_job
from mailcrate.export.settings import ExportSettings
from mailcrate.jobs import store
from mailcrate.services.context import ServiceContext

log = logging.getLogger("mailcrate.export")

__all__ = ["sweep_orphan_uploads"]


def sweep_orphan_uploads(
    context: ServiceContext, settings: ExportSettings, *, first_retry_seconds: float = 30, limit: int = 10
) -> int:
    """Abort the due uploads of failed and cancelled jobs; returns how many are gone now."""
    gone = 0
    for job in store.uploads_to_abort(context.db, first_retry_seconds=first_retry_seconds, limit=limit):
        upload_id = job.upload_id
        assert upload_id is not None
        try:
            dest = open_for_job(job, context, settings)
        except Exception as exc:  # the role cannot be assumed now: tried again later
            log.warning("job %s: cannot abort its upload yet (%s); will retry", job.job_id, exc)
            continue
        if dest.abort_upload(job.s3_path, upload_id):
            store.forget_upload(context.db, job.job_id, upload_id)
            log.info("job %s: its left-over upload is aborted", job.job_id)
            gone += 1
    return gone
