"""The live display of ``migrate run`` in a terminal (rich, rendered into a real Console):
one row per user being worked on with its phase and bytes, an overall row with the users
finished; a finished user's row gives way to one line saying how it ended."""

from __future__ import annotations

import io

from rich.console import Console

from mailcrate.migrate.progress import MigrateProgress


def test_rows_per_running_user_and_the_overall_bar() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    with MigrateProgress(console, total_bytes=4 << 20, users=2) as progress:
        progress.phase("alice@example.com", "exporting", "job 1234abcd 40%")
        progress.phase("bob@example.com", "restoring", total=2 << 20)
        progress.advance("bob@example.com", 1 << 20)
        progress._progress.refresh()  # what the live display shows now
        shown = out.getvalue()
        assert "alice@example.com" in shown and "exporting" in shown and "job 1234abcd 40%" in shown
        assert "bob@example.com" in shown and "restoring" in shown and "1.0/2.1 MB" in shown
        assert "all 2 users" in shown
        progress.finished("bob@example.com", "done", "2 restored, 0 already there")
        assert len(progress._rows) == 1
    assert "bob@example.com: done: 2 restored, 0 already there" in out.getvalue()
    assert "1/2 finished" in out.getvalue()


def test_plain_lines_without_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=160)
    with MigrateProgress(console, total_bytes=0, users=1) as progress:
        progress.phase("alice@example.com", "exporting", "starting")
        progress.phase("alice@example.com", "exporting", "job 1234abcd 40%")
        progress.phase("alice@example.com", "exporting", "job 1234abcd 41%")
        progress.phase("alice@example.com", "downloading")
        progress.advance("alice@example.com", 100)
        progress.finished("alice@example.com", "failed", "IMAP login failed for alice")
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "alice@example.com: exporting starting",
        "alice@example.com: exporting job 1234abcd 40%",
        "alice@example.com: exporting job 1234abcd 41%",
        "alice@example.com: downloading",
        "alice@example.com: failed: IMAP login failed for alice",
    ]
    assert "\x1b[" not in out.getvalue()
