"""The administrator's tool, client side: what ``mailcrate export ...``, ``mailcrate mailbox ...``
and ``mailcrate quickstart`` do, without any click in it.

It talks to WorkMail (``mailcrate serve`` or Amazon's own: same API, only ``--endpoint-url``
differs) through boto3 with the standard credential chain, and works on export archives on
disk (verify, unpack, restore). Modules:

``aws``        clients from endpoint/region/profile; JSON-safe output
``errors``     :class:`AdminError`: one line a person understands plus a hint
``policies``   the AWS procedure's trust and permission policies, and checks of existing ones
``setup``      the export prerequisites: create or check key, bucket, role
``jobs``       start/describe/list/cancel/wait export jobs
``progress``   live progress (rich in a terminal, plain lines otherwise)
``download``   fetch zip + log, verify, unpack (Maildir tree + .ics, or mbox)
``restore``    an export zip back into an embedded mailbox, an IMAP server, a CalDAV server
``mailbox``    binding users to mail sources and importing mail, on the data directory
``quickstart`` the whole flow in one command, against a child ``mailcrate serve``
"""
