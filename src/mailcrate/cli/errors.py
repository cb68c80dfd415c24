"""One place that turns exceptions into one clear line and a hint (``--debug``: the traceback).

The admin commands (``export``, ``mailbox``, ``quickstart``) run inside :class:`FriendlyGroup` /
:class:`FriendlyCommand`; whatever they raise - an :class:`~mailcrate.admin.errors.AdminError`,
a botocore error (no credentials, endpoint down, AccessDenied, unknown job), a file error - is
printed as ``error: <what happened>`` and ``hint: <what to do>`` on stderr, and the command exits
non-zero. ``--debug`` (on any of these commands) or ``MAILCRATE_DEBUG=1`` re-raises instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, NoReturn

import click

from mailcrate.admin.errors import AdminError
from mailcrate.datadir import DataDirError

__all__ = ["FriendlyCommand", "FriendlyGroup", "debug_option", "explain"]

_DEBUG_KEY = "mailcrate.debug"
_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE / --profile); for mailcrate serve, "
    'run: eval "$(mailcrate init --data-dir DIR)"'
)


def _endpoint(exc: Exception) -> str:
    url = getattr(exc, "kwargs", {}).get("endpoint_url") or ""
    return str(url) or "the endpoint"


def _client_error(exc: Any) -> tuple[str, str | None]:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    message = str(err.get("Message", "") or "").strip()
    op = exc.operation_name
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in (
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "InvalidAccessKeyId",
    ):
        return (
            f"the AWS credentials were rejected ({code})",
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) belong to this endpoint",
        )
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return ("the AWS session credentials have expired", "refresh them (e.g. aws sso login) and run again")
    if (
        code.startswith("AccessDenied")
        or code in ("UnauthorizedOperation", "Forbidden")
        or (code == "403" and op in ("GetObject", "HeadObject"))
    ):
        detail = f": {message}" if message else ""
        hint = "ask an administrator to allow this action for your user or role"
        if "kms" in message.lower() or op in ("GetObject", "HeadObject"):
            hint = (
                "downloading an export needs s3:GetObject on the object and kms:Decrypt on the export's key"
            )
        return (f"{op} was denied{detail}", hint)
    if op in ("DescribeMailboxExportJob", "CancelMailboxExportJob") and code == "EntityNotFoundException":
        return (
            "no such export job in this organization",
            "list the organization's jobs with: mailcrate export list --organization-id ORG",
        )
    if code == "OrganizationNotFoundException":
        return (
            f"organization not found: {message}",
            "list organizations with: aws workmail list-organizations",
        )
    if code == "EntityNotFoundException":
        return (message or "entity not found", "check --entity-id (a user id, user name or email address)")
    if code == "LimitExceededException":
        return (
            message or "an export limit was reached",
            "WorkMail allows one export per mailbox per 24 hours and 10 running exports per organization",
        )
    if code in ("NoSuchBucket", "NoSuchKey", "404"):
        return (
            f"{op}: {message or 'not found'}",
            "check the bucket and key (mailcrate export setup creates a bucket)",
        )
    if code in ("NotFoundException",) and op.startswith(("DescribeKey", "Encrypt", "Decrypt")):
        return (f"KMS key not found: {message}", "give the key's ARN, id or alias")
    if code == "InvalidParameterException" or code == "ValidationException":
        return (f"{op}: {message}", None)
    text = f"{op} failed: {code}" + (f": {message}" if message else "")
    if status and int(status) >= 500:
        return (text, "the service had an internal error; try again, and check its log if it persists")
    return (text, None)


def _tls_error(exc: Exception) -> tuple[str, str | None, int]:
    """An https:// endpoint that failed the handshake: say which of the usual three it was."""
    where, text = _endpoint(exc), str(exc)
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or "packet length too long" in text:
        return (
            f"{where} does not speak TLS",
            "a server started without --tls-cert serves plain HTTP: use http:// in --endpoint-url",
            1,
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"the TLS certificate of {where} is not trusted",
            "trust the server's CA: export AWS_CA_BUNDLE=DATA_DIR/tls/ca.pem (made by `mailcrate init "
            "--tls`), or the CA that signed its certificate",
            1,
        )
    if "doesn't match" in text or "hostname" in text.lower():
        return (
            f"the TLS certificate of {where} is not valid for that host name",
            "use a name the certificate lists (e.g. localhost), or make one for this name with "
            "`mailcrate init --tls --tls-name NAME` (after moving DATA_DIR/tls/server.* away)",
            1,
        )
    return (f"TLS with {where} failed: {text}", "check --endpoint-url and the server's certificate", 1)


def explain(exc: BaseException) -> tuple[str, str | None, int]:
    """(message, hint, exit code) for an exception."""
    if isinstance(exc, AdminError):
        return exc.message, exc.hint, exc.exit_code
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
        SSLError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials found", _CREDENTIALS_HINT, 1
    if isinstance(exc, ProfileNotFound):
        return str(exc), "list profiles with: aws configure list-profiles", 1
    if isinstance(exc, NoRegionError):
        return "no AWS region configured", "pass --region or set AWS_DEFAULT_REGION", 1
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return (
            f"cannot reach {_endpoint(exc)}",
            "is `mailcrate serve` running there? check --endpoint-url (or AWS_ENDPOINT_URL)",
            1,
        )
    if isinstance(exc, SSLError):
        return _tls_error(exc)
    if isinstance(exc, ConnectionClosedError) and _endpoint(exc).startswith("http://"):
        return (
            f"{_endpoint(exc)} closed the connection without an answer",
            "a server started with --tls-cert speaks TLS only: use https:// in --endpoint-url",
            1,
        )
    if isinstance(exc, ReadTimeoutError):
        return f"{_endpoint(exc)} did not answer in time", "check the server's load and log, then retry", 1
    if isinstance(exc, ParamValidationError):
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
        return f"invalid parameter: {detail or exc}", "see the command's --help for the expected values", 2
    if isinstance(exc, ClientError):
        message, hint = _client_error(exc)
        return message, hint, 1
    if isinstance(exc, DataDirError):
        return str(exc), None, 1
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return f"{exc.filename}: {exc.strerror}", None, 1
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}", None, 1
    return f"unexpected {type(exc).__name__}: {exc}", "re-run with --debug to see where it happened", 1


def _debugging(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_DEBUG_KEY)) or os.environ.get("MAILCRATE_DEBUG", "") not in ("", "0")


def _report(ctx: click.Context, exc: BaseException) -> NoReturn:
    message, hint, code = explain(exc)
    click.secho(f"error: {message}", err=True, fg="red")
    if hint:
        click.echo(f"hint: {hint}", err=True)
    ctx.exit(code)
    raise AssertionError("unreachable")


def _invoke(ctx: click.Context, run: Callable[[], Any]) -> Any:
    if not logging.getLogger().handlers:  # library warnings (an IMAP reconnect) as plain lines
        logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
        # urllib3 logs a certificate/host mismatch (with the whole certificate) before the
        # SSLError that _tls_error explains in one line.
        logging.getLogger("urllib3.connection").setLevel(logging.ERROR)
    try:
        return run()
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except KeyboardInterrupt:
        if _debugging(ctx):
            raise
        click.echo("interrupted", err=True)
        ctx.exit(130)
    except Exception as exc:
        if _debugging(ctx):
            raise
        _report(ctx, exc)


class FriendlyGroup(click.Group):
    """A command group whose commands report errors as one line plus a hint."""

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke(ctx, lambda: super(FriendlyGroup, self).invoke(ctx))


class FriendlyCommand(click.Command):
    """A single command that reports errors as one line plus a hint."""

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke(ctx, lambda: super(FriendlyCommand, self).invoke(ctx))


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG_KEY] = True
    return value


def debug_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--debug`` on a command: show the full traceback instead of the one-line error."""
    option = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show the full traceback on errors.",
    )
    return option(func)


def fail(message: str, hint: str | None = None, code: int = 1) -> NoReturn:
    """Raise the one-line error from inside a command."""
    raise AdminError(message, hint, exit_code=code)
