"""Checkpoints of an export attempt in the database: where a later attempt resumes.

The rows (table ``export_checkpoints``) belong to the job's current multipart upload: a row is
written only by the attempt that holds the job (the fencing of :mod:`mailcrate.jobs.store`) and
only while the job still records that upload, so a superseded attempt cannot leave a checkpoint
behind that a later attempt would trust. What a row holds is :mod:`mailcrate.export.checkpoint`'s
business; this module only stores, reads and removes rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select

from mailcrate.jobs.store import drop_checkpoints_in, held_by
from mailcrate.storage.db import Database
from mailcrate.storage.tables_jobs import export_checkpoints as rows
from mailcrate.storage.tables_jobs import export_jobs as jobs


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    part_number: int
    state: str
    hash_state: bytes
    central: bytes
    manifest: bytes


def save(db: Database, job_id: str, worker_id: str, upload_id: str, checkpoint: StoredCheckpoint) -> bool:
    """Store a checkpoint of the job's upload ``upload_id``; False (nothing stored) when the
    attempt no longer holds the job or the job no longer records that upload."""
    with db.begin() as conn:
        held = conn.execute(
            select(jobs.c.job_id).where(held_by(job_id, worker_id), jobs.c.upload_id == upload_id)
        ).first()
        if held is None:
            return False
        conn.execute(
            insert(rows).values(
                job_id=job_id,
                part_number=checkpoint.part_number,
                upload_id=upload_id,
                state=checkpoint.state,
                hash_state=checkpoint.hash_state,
                central=checkpoint.central,
                manifest=checkpoint.manifest,
            )
        )
        return True


def load(db: Database, job_id: str, upload_id: str) -> list[StoredCheckpoint]:
    """The checkpoints of the job's upload ``upload_id``, oldest first."""
    with db.read() as conn:
        found = conn.execute(
            select(rows.c.part_number, rows.c.state, rows.c.hash_state, rows.c.central, rows.c.manifest)
            .where(rows.c.job_id == job_id, rows.c.upload_id == upload_id)
            .order_by(rows.c.part_number)
        ).all()
    return [
        StoredCheckpoint(r.part_number, r.state, bytes(r.hash_state), bytes(r.central), bytes(r.manifest))
        for r in found
    ]


def drop(db: Database, job_id: str) -> None:
    """Remove the job's checkpoints (they do not fit what the source holds now, or the upload
    they belong to is gone)."""
    with db.begin() as conn:
        drop_checkpoints_in(conn, job_id)
