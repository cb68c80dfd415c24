"""``mailcrate migrate``: a whole WorkMail organization moved to an IMAP (+ CalDAV) server.

An orchestrator over what the admin tool already does for one mailbox (start an export, wait,
download, verify, restore with content identity), with each user's progress kept in a state
file so that a killed run resumes where it stopped. Modules: ``directory`` (users and target
logins), ``state`` (the state file), ``exports`` (starting, reusing and waiting for jobs within
WorkMail's limits), ``transfer`` (download, verify, restore of one user), ``run`` (the pool of
users), ``report`` and ``progress`` (what people and scripts see).
"""
