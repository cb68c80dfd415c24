"""The export settings of ``serve`` (validated in the settings table) and how workers get them."""

from __future__ import annotations

import pytest

from mailcrate.config import Settings
from mailcrate.jobs.worker import export_settings_from


def test_defaults_and_mapping() -> None:
    settings = Settings()
    assert (settings.export_workers, settings.export_max_running_per_org) == (4, 10)
    assert settings.export_mailbox_interval_seconds == 86400
    own = export_settings_from(settings, "http://127.0.0.1:4566")
    assert own.endpoint_url == "http://127.0.0.1:4566" and not own.external
    assert own.part_size == 8 * 1024 * 1024 and own.parts_in_flight == 3
    external = export_settings_from(settings.with_values(aws_endpoint_url="aws"), "http://127.0.0.1:1")
    assert external.external and external.endpoint_url == "aws"


@pytest.mark.parametrize(
    "values",
    [
        {"export_workers": -1},
        {"export_lease_seconds": 1},
        {"export_part_size_mib": 4},
        {"export_parts_in_flight": 0},
        {"export_max_running_per_org": 0},
        {"export_mailbox_interval_seconds": -5},
        {"export_max_attempts": 0},
    ],
)
def test_invalid_values_are_refused(values: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Settings(**values)  # type: ignore[arg-type]
