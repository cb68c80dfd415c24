"""mailcrate: self-hosted Amazon WorkMail mailbox export jobs."""

__version__ = "0.1.0"
