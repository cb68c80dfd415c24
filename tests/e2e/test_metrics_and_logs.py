"""``GET /metrics`` counts a test's own requests and export jobs, summed over ``serve`` and its
export worker children (prometheus_client multiprocess mode), and ``--log-format json`` writes
lines that parse, with request id, principal and job id.

Parsed with prometheus_client's own text parser, as a Prometheus server would read it.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.jobs.support import fill_maildir, new_mailbox, permission_policy, trust_policy, wait_job
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "metered"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    data = tmp_path_factory.mktemp("metrics") / "data"
    with MailcrateServer.running(data, "--log-format", "json", "--log-level", "info") as srv:
        yield srv


def scrape(server: MailcrateServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_this_tests_jobs_and_requests(server: MailcrateServer) -> None:
    before = scrape(server)
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 30, "Sent Items": 12}, size=5000)
    bucket = "metrics-" + uuid.uuid4().hex[:8]
    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    server.client("s3").create_bucket(Bucket=bucket)
    iam = server.client("iam")
    role_arn = iam.create_role(RoleName="R", AssumeRolePolicyDocument=trust_policy(server.account_id))[
        "Role"
    ]["Arn"]
    iam.put_role_policy(
        RoleName="R", PolicyName="p", PolicyDocument=permission_policy(bucket, PREFIX, key_arn)
    )
    wm = server.client("workmail")
    args = {
        "OrganizationId": mb.organization_id,
        "EntityId": mb.user_id,
        "KmsKeyArn": key_arn,
        "S3Prefix": PREFIX,
    }
    # a role that does not exist: the job fails in the worker (a failed one does not count
    # against the mailbox's one export a day)
    bad = wm.start_mailbox_export_job(
        RoleArn=role_arn.replace(":role/R", ":role/Missing"), S3BucketName=bucket, **args
    )["JobId"]
    assert wait_job(wm, mb.organization_id, bad)["State"] == "FAILED"
    good = wm.start_mailbox_export_job(RoleArn=role_arn, S3BucketName=bucket, **args)["JobId"]
    assert wait_job(wm, mb.organization_id, good)["State"] == "COMPLETED"
    log = server.client("s3").get_object(Bucket=bucket, Key=f"{PREFIX}/{good}.json")["Body"].read()
    figures = json.loads(log)

    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    start = {"service": "workmail", "operation": "StartMailboxExportJob", "status": "200"}
    assert delta("mailcrate_requests_total", **start) == 2
    latency = {"service": "workmail", "operation": "StartMailboxExportJob"}
    assert delta("mailcrate_request_duration_seconds_count", **latency) == 2
    assert delta("mailcrate_request_duration_seconds_sum", **latency) > 0
    # observed in the worker children, summed by the server
    assert delta("mailcrate_export_jobs_finished_total", state="COMPLETED") == 1
    assert delta("mailcrate_export_jobs_finished_total", state="FAILED") == 1
    assert delta("mailcrate_export_job_duration_seconds_count", state="COMPLETED") == 1
    assert delta("mailcrate_export_items_total") == int(figures["totalMessages"]) == 42
    assert delta("mailcrate_export_bytes_total") == int(figures["totalBytes"])
    assert delta("mailcrate_export_queue_wait_seconds_count") == 2
    # read at scrape time
    assert value(after, "mailcrate_export_jobs", state="COMPLETED") == 1
    assert value(after, "mailcrate_export_jobs", state="FAILED") == 1
    assert value(after, "mailcrate_export_jobs", state="RUNNING") == 0
    zip_size = server.client("s3").head_object(Bucket=bucket, Key=f"{PREFIX}/{good}.zip")["ContentLength"]
    assert value(after, "mailcrate_s3_stored_bytes") >= zip_size + len(log)
    assert value(after, "mailcrate_s3_objects") == 2
    assert value(after, "mailcrate_export_worker_processes") >= 1

    lines = [json.loads(line) for line in Path(server.log_path).read_text().splitlines() if line.strip()]
    starts = [r for r in lines if "StartMailboxExportJob" in r["message"]]
    assert len(starts) == 2
    assert all(r["principal"] == f"arn:aws:iam::{server.account_id}:root" for r in starts)
    assert all(len(r["request_id"]) == 36 and r["request_id"] in r["message"] for r in starts)
    worker_lines = [r for r in lines if r["process"] == "worker" and r["job_id"] == good]
    assert any("completed" in r["message"] for r in worker_lines), worker_lines


def test_metrics_off_is_not_found(tmp_path: Path) -> None:
    with MailcrateServer.running(tmp_path / "data", "--metrics", "false") as srv:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{srv.endpoint}/metrics", timeout=10)
        assert err.value.code in (403, 404)  # S3: anonymous ListObjects of a bucket "metrics"
        assert not (srv.data_dir / "metrics").exists() or not any((srv.data_dir / "metrics").iterdir())
