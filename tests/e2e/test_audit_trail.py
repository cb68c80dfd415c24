"""The audit trail, read with the stock ``aws cloudtrail lookup-events`` and ``mailcrate audit``:
who started which export (ARN, source IP), what the job did, who downloaded the zip; no secret
recorded; each account sees only its own events.

LookupEvents' rules are AWS's:
https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html
(one lookup attribute; StartTime after EndTime is InvalidTimeRangeException; newest first).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from sqlalchemy import select

from mailcrate.datadir import DataDir
from mailcrate.storage.tables_audit import audit_event_resources, audit_events
from tests.jobs.support import fill_maildir, new_mailbox, permission_policy, trust_policy, wait_job
from tests.support.mailcrate_server import MailcrateServer, mailcrate_cmd

PREFIX = "audited"
PASSWORD = "Corr3ct-Horse"  # what tests.jobs.support.new_mailbox gives its users


def _setup_export(server: MailcrateServer) -> dict[str, str]:
    iam, kms, s3 = server.client("iam"), server.client("kms"), server.client("s3")
    bucket = "audit-" + uuid.uuid4().hex[:10]
    key_arn = kms.create_key(Description="audit test")["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=bucket)
    role = iam.create_role(RoleName="ExportRole", AssumeRolePolicyDocument=trust_policy(server.account_id))
    iam.put_role_policy(
        RoleName="ExportRole", PolicyName="p", PolicyDocument=permission_policy(bucket, PREFIX, key_arn)
    )
    return {"bucket": bucket, "key_arn": key_arn, "role_arn": role["Role"]["Arn"]}


def _iam_user(server: MailcrateServer, name: str, actions: list[str]) -> tuple[str, dict[str, str]]:
    iam = server.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture(scope="module")
def world(server: MailcrateServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One export started by an IAM user with the aws CLI, run to completion, and its zip and
    log downloaded by root: the events every test below looks up."""
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 20}, size=3000)
    dest = _setup_export(server)
    operator_arn, operator_env = _iam_user(server, "operator", ["workmail:*", "iam:PassRole"])
    started = server.aws(
        "workmail",
        "start-mailbox-export-job",
        "--organization-id",
        mb.organization_id,
        "--entity-id",
        mb.user_id,
        "--kms-key-arn",
        dest["key_arn"],
        "--role-arn",
        dest["role_arn"],
        "--s3-bucket-name",
        dest["bucket"],
        "--s3-prefix",
        PREFIX,
        env=server.aws_env(**operator_env),
    )
    job_id = started["JobId"]
    job = wait_job(server.client("workmail"), mb.organization_id, job_id)
    assert job["State"] == "COMPLETED", job
    tmp = tmp_path_factory.mktemp("downloads")
    for suffix in ("zip", "json"):
        result = server.aws(
            "s3",
            "cp",
            f"s3://{dest['bucket']}/{PREFIX}/{job_id}.{suffix}",
            str(tmp / f"x.{suffix}"),
            check=False,
        )
        assert result.returncode == 0, result.stderr
    yield {
        "mb": mb,
        "dest": dest,
        "job_id": job_id,
        "operator_arn": operator_arn,
        "operator_env": operator_env,
    }


def _lookup(server: MailcrateServer, key: str, value: str, env: dict[str, str] | None = None) -> list[dict]:
    out = server.aws(
        "cloudtrail",
        "lookup-events",
        "--lookup-attributes",
        f"AttributeKey={key},AttributeValue={value}",
        env=env,
    )
    return out["Events"]


def _lookup_soon(server: MailcrateServer, key: str, value: str) -> list[dict]:
    """:func:`_lookup` once it finds something: an API call's event is committed by the audit
    writer within its linger (250 ms) after the call was answered."""
    deadline = time.monotonic() + 10
    while not (events := _lookup(server, key, value)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return events


def test_aws_cli_finds_the_start_with_the_callers_arn_and_source_ip(
    server: MailcrateServer, world: dict[str, Any]
) -> None:
    events = _lookup(server, "EventName", "StartMailboxExportJob")
    assert len(events) == 1
    event = events[0]
    assert event["EventName"] == "StartMailboxExportJob"
    assert event["EventSource"] == "workmail.amazonaws.com"
    assert event["Username"] == "operator"
    assert event["AccessKeyId"] == world["operator_env"]["AWS_ACCESS_KEY_ID"]
    record = json.loads(event["CloudTrailEvent"])
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["userIdentity"]["arn"] == world["operator_arn"]
    assert record["userIdentity"]["accountId"] == server.account_id
    assert record["sourceIPAddress"] == "127.0.0.1"
    assert record["userAgent"].startswith("aws-cli/")
    assert record["eventName"] == "StartMailboxExportJob" and record["readOnly"] is False
    assert record["requestParameters"]["OrganizationId"] == world["mb"].organization_id
    assert record["responseElements"] == {"JobId": world["job_id"]}
    assert "errorCode" not in record
    assert len(record["requestID"]) == 36 and record["eventID"] == event["EventId"]
    assert {"ResourceType": "AWS::WorkMail::MailboxExportJob", "ResourceName": world["job_id"]} in event[
        "Resources"
    ]


def test_job_events_and_zip_reads_are_recorded(server: MailcrateServer, world: dict[str, Any]) -> None:
    job_id, bucket = world["job_id"], world["dest"]["bucket"]
    by_job = _lookup(server, "ResourceName", job_id)
    names = [e["EventName"] for e in by_job]
    # newest first: the job's life, and the call that started it
    assert names == [
        "MailboxExportJobCompleted",
        "MailboxExportJobClaimed",
        "MailboxExportJobStarted",
        "StartMailboxExportJob",
    ] or names == [
        "MailboxExportJobCompleted",
        "MailboxExportJobClaimed",
        "StartMailboxExportJob",
        "MailboxExportJobStarted",
    ]
    started_event = next(e for e in by_job if e["EventName"] == "MailboxExportJobStarted")
    started = json.loads(started_event["CloudTrailEvent"])
    assert started["userIdentity"]["arn"] == world["operator_arn"]
    # Start records it from the job it created (no second read): the job's own resources
    assert {(r["ResourceType"], r["ResourceName"]) for r in started_event["Resources"]} >= {
        ("AWS::WorkMail::Organization", world["mb"].organization_id),
        ("AWS::S3::Bucket", bucket),
        ("AWS::S3::Object", f"arn:aws:s3:::{bucket}/{PREFIX}/{job_id}.zip"),
        ("AWS::KMS::Key", world["dest"]["key_arn"]),
        ("AWS::IAM::Role", world["dest"]["role_arn"]),
    }
    assert started["requestParameters"] == {"jobId": job_id, "attempt": 0}
    assert started["sourceIPAddress"] == "127.0.0.1"
    completed = json.loads(by_job[0]["CloudTrailEvent"])
    assert completed["userIdentity"] == {"type": "AWSService", "invokedBy": "export.workmail.amazonaws.com"}
    assert completed["eventType"] == "AwsServiceEvent"
    for suffix in ("zip", "json"):
        reads = _lookup(server, "ResourceName", f"arn:aws:s3:::{bucket}/{PREFIX}/{job_id}.{suffix}")
        get = [json.loads(e["CloudTrailEvent"]) for e in reads if e["EventName"] == "GetObject"]
        assert len(get) == 1, [e["EventName"] for e in reads]
        assert get[0]["userIdentity"]["type"] == "Root" and get[0]["readOnly"] is True
        params = get[0]["requestParameters"]
        assert (params["Bucket"], params["Key"]) == (bucket, f"{PREFIX}/{job_id}.{suffix}")


def test_paging_and_time_range(server: MailcrateServer, world: dict[str, Any]) -> None:
    ct = server.client("cloudtrail")
    everything = ct.lookup_events(MaxResults=50)["Events"]
    assert len(everything) >= 10
    seen, token = [], None
    while True:
        page = ct.lookup_events(MaxResults=3, **({"NextToken": token} if token else {}))
        seen += [e["EventId"] for e in page["Events"]]
        token = page.get("NextToken")
        if not token:
            break
    all_ids = [e["EventId"] for page in ct.get_paginator("lookup_events").paginate() for e in page["Events"]]
    assert seen == all_ids and len(set(seen)) == len(seen)
    times = [e["EventTime"] for e in everything]
    assert times == sorted(times, reverse=True)
    future = datetime.now(UTC) + timedelta(hours=1)
    assert ct.lookup_events(StartTime=future)["Events"] == []
    past = ct.lookup_events(EndTime=datetime.now(UTC) - timedelta(days=1))["Events"]
    assert past == []
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ct.lookup_events(StartTime=future, EndTime=future - timedelta(hours=2))
    assert err.value.response["Error"]["Code"] == "InvalidTimeRangeException"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ct.lookup_events(NextToken="bm90IGEgdG9rZW4=")
    assert err.value.response["Error"]["Code"] == "InvalidNextTokenException"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ct.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "GetObject"},
                {"AttributeKey": "ReadOnly", "AttributeValue": "true"},
            ]
        )
    assert err.value.response["Error"]["Code"] == "InvalidLookupAttributesException"
    reads = ct.lookup_events(LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "true"}])
    assert reads["Events"] and all(e["ReadOnly"] == "true" for e in reads["Events"])


def test_refused_calls_are_recorded_and_lookup_needs_permission(
    server: MailcrateServer, world: dict[str, Any]
) -> None:
    _arn, env = _iam_user(server, "intruder", ["s3:ListAllMyBuckets"])
    denied = server.aws(
        "workmail",
        "cancel-mailbox-export-job",
        "--organization-id",
        world["mb"].organization_id,
        "--job-id",
        world["job_id"],
        env=server.aws_env(**env),
        check=False,
    )
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr
    cancels = _lookup_soon(server, "Username", "intruder")
    record = json.loads(cancels[0]["CloudTrailEvent"])
    assert record["eventName"] == "CancelMailboxExportJob"
    assert record["errorCode"] == "AccessDeniedException"
    lookup = server.aws("cloudtrail", "lookup-events", env=server.aws_env(**env), check=False)
    assert lookup.returncode != 0 and "cloudtrail:LookupEvents" in lookup.stderr


def test_another_account_sees_none_of_these_events(server: MailcrateServer, world: dict[str, Any]) -> None:
    other = server.client("cloudtrail", **server.create_account())
    assert other.lookup_events()["Events"] == []
    for key, value in (("EventId", _lookup(server, "EventName", "StartMailboxExportJob")[0]["EventId"]),
                       ("ResourceName", world["job_id"])):  # fmt: skip
        found = other.lookup_events(LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}])
        assert found["Events"] == []


def test_no_secret_is_recorded(server: MailcrateServer, world: dict[str, Any]) -> None:
    """Passwords, secret keys, session tokens and plaintext sent in calls appear nowhere in the
    audit tables (the model's ``sensitive`` members read HIDDEN_DUE_TO_SECURITY_REASONS)."""
    kms = server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    plaintext = b"the-plaintext-" + uuid.uuid4().hex.encode()
    kms.encrypt(KeyId=key_id, Plaintext=plaintext)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": server.account_id}, "Action": "sts:AssumeRole"}
        ],
    }
    role = server.client("iam").create_role(RoleName="Encrypter", AssumeRolePolicyDocument=json.dumps(trust))
    server.client("iam").put_role_policy(
        RoleName="Encrypter",
        PolicyName="p",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
        ),
    )
    creds = server.client("sts").assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="enc")[
        "Credentials"
    ]
    server.client(
        "kms",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    ).encrypt(KeyId=key_id, Plaintext=b"x")
    wm = server.client("workmail")
    wm.create_user(
        OrganizationId=world["mb"].organization_id, Name="bob", DisplayName="Bob", Password="N3w-Secret-pw"
    )
    user_events = _lookup_soon(server, "EventName", "CreateUser")
    assert json.loads(user_events[0]["CloudTrailEvent"])["requestParameters"]["Password"] == (
        "HIDDEN_DUE_TO_SECURITY_REASONS"
    )
    secrets = [
        PASSWORD,
        "N3w-Secret-pw",
        plaintext.decode(),
        server.secret_access_key,
        world["operator_env"]["AWS_SECRET_ACCESS_KEY"],
        creds["SecretAccessKey"],
        creds["SessionToken"],
    ]
    dd = DataDir.open(server.data_dir)
    try:
        deadline = time.monotonic() + 5  # calls' events are committed by a writer thread within 250 ms
        while True:
            with dd.db.read() as conn:
                dump = repr(conn.execute(select(audit_events)).all()) + repr(
                    conn.execute(select(audit_event_resources)).all()
                )
            if (
                "Encrypt" in dump and "AssumeRole" in dump and '"bob"' in dump
            ) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        dd.close()
    assert "Encrypt" in dump and "AssumeRole" in dump and "'CreateUser'" in dump
    for secret in secrets:
        assert secret not in dump


def test_mailcrate_audit_prints_a_table_and_json(server: MailcrateServer, world: dict[str, Any]) -> None:
    base = mailcrate_cmd(
        "audit", "--data-dir", str(server.data_dir), "--lookup", f"ResourceName={world['job_id']}"
    )
    table = subprocess.run(base, check=True, capture_output=True, text=True).stdout
    assert "StartMailboxExportJob" in table and world["operator_arn"] in table and "127.0.0.1" in table
    assert "MailboxExportJobCompleted" in table
    records = json.loads(
        subprocess.run([*base, "--output", "json"], check=True, capture_output=True, text=True).stdout
    )
    names = [r["eventName"] for r in records]  # newest first (other tests may add a refused cancel)
    assert names.index("MailboxExportJobCompleted") < names.index("MailboxExportJobStarted")
    assert all(r["recipientAccountId"] == server.account_id for r in records)
    via_api = subprocess.run(
        mailcrate_cmd("audit", "--endpoint-url", server.endpoint, "--lookup", "EventName=StartMailboxExportJob",
                      "--output", "json"),
        check=True, capture_output=True, text=True, env=server.aws_env(),
    ).stdout  # fmt: skip
    assert json.loads(via_api)[0]["userIdentity"]["arn"] == world["operator_arn"]


@pytest.fixture(params=["sqlite", "postgresql"])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataDir]:
    """A migrated data directory on SQLite, or on a real PostgreSQL (migration 0007 on both)."""
    if request.param == "sqlite":
        dd = DataDir.open(tmp_path / "d", create=True)
        yield dd
        dd.close()
        return
    from tests.support.postgres import start_postgres

    postgres = start_postgres()
    try:
        dd = DataDir.open(tmp_path / "d", create=True, database_url=postgres.create_database("audit"))
        yield dd
        dd.close()
    finally:
        postgres.stop()


def test_lookup_filters_pages_and_retention_on_both_databases(data_dir: DataDir) -> None:
    from mailcrate.audit.events import AuditEvent, Identity, Resource, prune, record
    from mailcrate.services.cloudtrail import lookup

    now = datetime.now(UTC)
    root = Identity("Root", "arn:aws:iam::111122223333:root", "root", "AKIAROOT")
    events = [
        AuditEvent("111122223333", "us-east-1", "s3", "PutObject", root, event_time=now - timedelta(days=d),
                   resources=(Resource("AWS::S3::Bucket", "b"), Resource("AWS::S3::Bucket", "b"),
                              Resource("AWS::S3::Object", "arn:aws:s3:::b/k"), Resource("AWS::IAM::Role", "r")))
        for d in (1, 2, 3, 89, 91, 400)
    ] + [AuditEvent("999988887777", "us-east-1", "kms", "CreateKey", root, event_time=now)]  # fmt: skip
    with data_dir.db.begin() as conn:
        for event in events:
            record(conn, event)
    with data_dir.db.read() as conn:
        mine = lookup.Query("111122223333", ("ResourceName", "b"))
        first, token = lookup.page(conn, mine, 4, None)
        rest, last = lookup.page(conn, mine, 4, token)
        assert [e["EventId"] for e in first + rest] == [e.event_id for e in events[:6]] and last is None
        # two resources on the event's row, the others rows of audit_event_resources
        for attribute in (("ResourceName", "r"), ("ResourceType", "AWS::IAM::Role"),
                          ("ResourceName", "arn:aws:s3:::b/k"), ("ResourceType", "AWS::S3::Bucket")):  # fmt: skip
            found, _ = lookup.page(conn, lookup.Query("111122223333", attribute), 50, None)
            assert [e["EventId"] for e in found] == [e.event_id for e in events[:6]], attribute
        with pytest.raises(lookup.InvalidToken):  # a token of another account's lookup
            lookup.page(conn, lookup.Query("999988887777", ("ResourceName", "b")), 4, token)
        window = lookup.Query(
            "111122223333", None, now - timedelta(days=2, hours=1), now - timedelta(hours=1)
        )
        assert [e["EventId"] for e in lookup.page(conn, window, 50, None)[0]] == [
            events[0].event_id,
            events[1].event_id,
        ]
        other = lookup.page(
            conn, lookup.Query("999988887777", ("EventSource", "kms.amazonaws.com")), 50, None
        )
        assert [e["EventName"] for e in other[0]] == ["CreateKey"]
    assert prune(data_dir.db, timedelta(days=90), batch=1) == 2
    with data_dir.db.read() as conn:
        kept = {r.event_id for r in conn.execute(select(audit_events.c.event_id))}
        kept_resources = {r.event_id for r in conn.execute(select(audit_event_resources.c.event_id))}
    assert kept == {e.event_id for e in events[:4]} | {events[6].event_id}
    assert kept_resources == {e.event_id for e in events[:4]}


def test_concurrent_key_uses_read_back_by_resource_name_and_type(server: MailcrateServer) -> None:
    """Encrypt calls from 8 clients at once land in the audit writer's multi-row batches; the aws
    CLI then finds every one by the key's id (ResourceName, paged by the CLI), with the request id
    each caller was given, and by ResourceType."""
    kms = server.client("kms")
    key_id = kms.create_key(Description="audit batches")["KeyMetadata"]["KeyId"]

    def encrypt(n: int) -> str:
        out = server.client("kms").encrypt(KeyId=key_id, Plaintext=f"message {n}".encode())
        return out["ResponseMetadata"]["RequestId"]

    with ThreadPoolExecutor(8) as pool:
        request_ids = set(pool.map(encrypt, range(240)))
    deadline = time.monotonic() + 10
    while True:  # the writer commits within its linger (250 ms) after the calls were answered
        events = _lookup(server, "ResourceName", key_id)
        if len(events) >= len(request_ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    assert {r["requestID"] for r in records} == request_ids and len(records) == 240
    assert {r["eventName"] for r in records} == {"Encrypt"}
    assert all(r["readOnly"] is True and r["eventSource"] == "kms.amazonaws.com" for r in records)
    assert all(r["requestParameters"]["KeyId"] == key_id for r in records)
    assert all({"ResourceType": "AWS::KMS::Key", "ResourceName": key_id} in e["Resources"] for e in events)
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True)
    by_type = {e["EventId"] for e in _lookup(server, "ResourceType", "AWS::KMS::Key")}
    assert {e["EventId"] for e in events} <= by_type


def test_a_batch_larger_than_a_statement_round_trips_on_both_databases(data_dir: DataDir) -> None:
    """The writer's rows (insert_rows: several rows per INSERT, a chunk per statement) read back
    field for field through LookupEvents' query, with resource and time filters, on SQLite and
    PostgreSQL: 130 events (3 statements) with 2-3 resources each (2 statements)."""
    from mailcrate.audit.events import AuditEvent, Identity, Resource, insert_rows, rows_of
    from mailcrate.audit.jobs import EXPORT_SERVICE
    from mailcrate.services.cloudtrail import lookup

    now = datetime.now(UTC).replace(microsecond=123456)
    user = Identity("IAMUser", "arn:aws:iam::111122223333:user/bob", "bob", "AKIABOB")
    service = Identity("AWSService", invoked_by="export.workmail.amazonaws.com")
    events = [
        AuditEvent(
            "111122223333", "us-east-1", "kms" if n % 2 else "workmail", "Encrypt" if n % 2 else "CancelMailboxExportJob",
            user if n % 3 else service, read_only=bool(n % 2), request_id=f"req-{n}",
            source_ip="192.0.2.7" if n % 5 else None, user_agent="aws-cli/2 \u00e9" * (n % 2),
            error_code="AccessDenied" if n % 7 == 0 else None,
            request_parameters={"KeyId": f"key-{n % 4}", "Note": "100% 'quoted' \"text\"; --"} if n % 2 else None,
            resources=(Resource("AWS::KMS::Key", f"key-{n % 4}"), Resource("AWS::WorkMail::Organization", "m-1"))
            + ((Resource("AWS::S3::Object", f"arn:aws:s3:::b/k{n}"),) if n % 10 == 0 else ()),
            event_time=now - timedelta(minutes=n),
        )
        for n in range(130)
    ]  # fmt: skip
    with data_dir.db.write() as conn:
        insert_rows(conn, rows_of(events))
    with data_dir.db.read() as conn:
        key_1, _ = lookup.page(conn, lookup.Query("111122223333", ("ResourceName", "key-1")), 50, None)
        objects, _ = lookup.page(
            conn, lookup.Query("111122223333", ("ResourceType", "AWS::S3::Object")), 50, None
        )
        window, _ = lookup.page(
            conn, lookup.Query("111122223333", None, now - timedelta(minutes=20, seconds=1), now), 50, None
        )
        everything, token = [], None
        while True:
            found, token = lookup.page(conn, lookup.Query("111122223333"), 50, token)
            everything += found
            if token is None:
                break
    by_id = {e.event_id: e for e in events}
    assert [e["EventId"] for e in key_1] == [e.event_id for e in events if e.resources[0].name == "key-1"]
    assert [e["EventId"] for e in objects] == [e.event_id for e in events[::10]]
    assert [e["EventId"] for e in window] == [e.event_id for e in events[:21]]
    assert [e["EventId"] for e in everything] == [e.event_id for e in events]
    for shaped in everything:
        event, record = by_id[shaped["EventId"]], json.loads(shaped["CloudTrailEvent"])
        assert shaped["EventTime"] == event.event_time
        assert (record["eventName"], record["readOnly"], record["requestID"]) == (
            event.event_name, event.read_only, event.request_id,
        )  # fmt: skip
        # CloudTrail names the service where a service acted (no address, no agent)
        assert record["sourceIPAddress"] == (event.source_ip or EXPORT_SERVICE)
        assert record["userAgent"] == (event.user_agent or EXPORT_SERVICE)
        assert record.get("errorCode") == event.error_code
        assert record.get("requestParameters") == event.request_parameters
        assert record["userIdentity"].get("arn") == event.identity.arn
        assert record["userIdentity"].get("invokedBy") == event.identity.invoked_by
        assert {(r["ResourceType"], r["ResourceName"]) for r in shaped["Resources"]} == {
            (r.type, r.name) for r in event.resources
        }


def test_events_written_before_inline_resources_are_still_found(data_dir: DataDir) -> None:
    """An event written before migration 0013 has every resource as a row of
    audit_event_resources and none on its own row: LookupEvents by ResourceName and
    ResourceType finds it beside a new event of the same key, on SQLite and PostgreSQL."""
    from mailcrate.audit.events import AuditEvent, Identity, Resource, insert_rows, rows_of_event
    from mailcrate.services.cloudtrail import lookup

    now = datetime.now(UTC)
    user = Identity("IAMUser", "arn:aws:iam::111122223333:user/bob", "bob", "AKIABOB")
    key = (
        Resource("AWS::KMS::Key", "k-1"),
        Resource("AWS::KMS::Key", "arn:aws:kms:us-east-1:111122223333:key/k-1"),
    )
    old, new = (
        AuditEvent("111122223333", "us-east-1", "kms", "Encrypt", user, event_time=now - timedelta(minutes=m),
                   resources=key)
        for m in (5, 1)
    )  # fmt: skip
    old_row, no_rows = rows_of_event(old)
    assert no_rows == [] and old_row[-4:] == (key[0].type, key[0].name, key[1].type, key[1].name)
    old_layout = (
        [(*old_row[:-4], None, None, None, None)],
        [(old.event_id, r.type, r.name, old.account_id, old.event_time) for r in key],
    )
    with data_dir.db.write() as conn:
        insert_rows(conn, old_layout)
        insert_rows(conn, ([rows_of_event(new)[0]], []))
    with data_dir.db.read() as conn:
        for attribute in (
            ("ResourceName", "k-1"),
            ("ResourceName", key[1].name),
            ("ResourceType", key[0].type),
        ):
            found, _ = lookup.page(conn, lookup.Query("111122223333", attribute), 50, None)
            assert [e["EventId"] for e in found] == [new.event_id, old.event_id], attribute
            assert all(
                {(r["ResourceType"], r["ResourceName"]) for r in e["Resources"]}
                == {(r.type, r.name) for r in key}
                for e in found
            )


def _count_requests(data_dir: DataDir, prefix: str) -> int:
    with data_dir.db.read() as conn:
        ids = conn.execute(select(audit_events.c.request_id)).scalars()
        return sum(1 for request_id in ids if request_id and request_id.startswith(prefix))


def test_every_event_of_concurrent_callers_is_written_across_close(data_dir: DataDir) -> None:
    """8 threads record 250 calls each while the trail is closed halfway through (a server
    shutting down under load): every event is in the database afterwards, each once."""
    from mailcrate.audit.events import AuditEvent, Identity, rows_of_event
    from mailcrate.audit.trail import AuditTrail

    trail = AuditTrail(data_dir.db, retention_days=0)
    user = Identity("IAMUser", "arn:aws:iam::111122223333:user/bob", "bob", "AKIABOB")
    started = threading.Barrier(9)
    halfway = threading.Event()
    written = itertools.count(1)

    def caller(n: int) -> None:
        started.wait()
        for i in range(250):
            event = AuditEvent(
                "111122223333", "us-east-1", "kms", "Encrypt", user, request_id=f"conc-{n}-{i}"
            )
            trail.write_rows(rows_of_event(event))
            if next(written) == 1000:
                halfway.set()

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    started.wait()
    assert halfway.wait(30)
    trail.stop()
    for thread in threads:
        thread.join(30)
    assert _count_requests(data_dir, "conc-") == 2000
    with data_dir.db.read() as conn:
        assert len(set(conn.execute(select(audit_events.c.request_id)).scalars())) == 2000


def test_a_full_backlog_refuses_and_the_rest_is_written(tmp_path: Path) -> None:
    """While the database is held (a long write transaction of this process, SQLite), the
    writer's backlog fills to its bound; a call's event past it is refused after the wait (the
    caller logs it), and once the database is free every accepted event is written."""
    from mailcrate.audit.events import AuditEvent, Identity, rows_of_event
    from mailcrate.audit.trail import _GroupWriter

    dd = DataDir.open(tmp_path / "d", create=True)
    writer = _GroupWriter(dd.db)
    writer.QUEUE, writer.FULL_WAIT = 20, 0.3
    user = Identity("IAMUser", "arn:aws:iam::111122223333:user/bob", "bob", "AKIABOB")
    accepted = 0
    with dd.db.write():  # the writer's commit waits for this transaction
        for i in range(80):
            if writer.write(
                rows_of_event(
                    AuditEvent("111122223333", "us-east-1", "kms", "Encrypt", user, request_id=f"full-{i}")
                )
            ):
                accepted += 1
            time.sleep(0.005)
            if accepted < i + 1:
                break
    assert 20 <= accepted < 80  # the bound, plus what the writer took before it blocked
    writer.close()
    assert _count_requests(dd, "full-") == accepted
    dd.close()


def test_migration_0013_down_and_up_keeps_every_resource_findable(data_dir: DataDir) -> None:
    """Downgrading past migration 0013 moves an event's inline resources back into rows of
    audit_event_resources (none lost, the event kept), and upgrading again finds each by name."""
    from alembic import command
    from alembic.config import Config

    from mailcrate.audit.events import AuditEvent, Identity, Resource, record
    from mailcrate.services.cloudtrail import lookup
    from mailcrate.storage import db as storage_db

    root = Identity("Root", "arn:aws:iam::111122223333:root", "root", "AKIAROOT")
    names = ("k-1", "arn:aws:kms:us-east-1:111122223333:key/k-1", "arn:aws:iam::111122223333:role/r")
    event = AuditEvent(
        "111122223333", "us-east-1", "kms", "Encrypt", root,
        resources=(Resource("AWS::KMS::Key", names[0]), Resource("AWS::KMS::Key", names[1]),
                   Resource("AWS::IAM::Role", names[2])),
    )  # fmt: skip
    with data_dir.db.begin() as conn:
        record(conn, event)
    cfg = Config()
    cfg.set_main_option("script_location", str(storage_db._MIGRATIONS))
    with data_dir.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013_audit_resources-1")
    with data_dir.db.read() as conn:
        rows = conn.execute(select(audit_event_resources.c.resource_name, audit_event_resources.c.event_id))
        assert sorted(rows) == sorted((name, event.event_id) for name in names)
    with data_dir.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    with data_dir.db.read() as conn:
        for name in names:
            found, _ = lookup.page(conn, lookup.Query("111122223333", ("ResourceName", name)), 10, None)
            assert [e["EventId"] for e in found] == [event.event_id], name
