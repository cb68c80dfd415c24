"""The audit trail: who changed what, who read which export, and what each export job did.

* :mod:`.events` — the event record, its durable write (inside the caller's transaction where
  there is one) and retention;
* :mod:`.requests` — turning one API call into an event (secrets removed, resources named);
* :mod:`.jobs` — export job events (started, claimed, completed, failed, cancelled);
* :mod:`.trail` — the server's side: the batching writer of calls' events, retention.

Reading them back, as CloudTrail's LookupEvents, is :mod:`mailcrate.services.cloudtrail.lookup`.
This room imports only storage and accounts: services, jobs and the server call into it.
"""
