"""Embedded STS: AssumeRole (for AWS principals over the wire, for service principals in-process)
and GetCallerIdentity."""
