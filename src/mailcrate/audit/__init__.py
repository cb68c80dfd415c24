"""The audit trail: who changed what, who read which export, and what each export job did.

* :mod:`.events` — the event record, its durable write (inside the caller's transaction where
  there is one) and retention;
* :mod:`.requests` — turning one API call into an event (secrets removed, resources named);
* :mod:`.jobs` — export job events (started, claimed, completed, failed, cancelled);
* :mod:`.lookup` — reading events back with CloudTrail's ``LookupEvents`` filters and shaping
  them as CloudTrail does.

This room imports only storage and protocol: services, jobs and the server call into it.
"""
