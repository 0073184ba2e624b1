"""The README stays true: every setting is documented, the quickstart is the two make targets."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [
        f"REELFORGE_{name.upper()}"
        for name in Settings.model_fields
        if f"REELFORGE_{name.upper()}" not in README
    ]
    assert missing == []


def test_quickstart_is_make_demo_and_make_test() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quickstart.strip().splitlines()]
    assert commands == ["make demo", "make test"]
