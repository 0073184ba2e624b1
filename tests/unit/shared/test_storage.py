"""Local storage: results past retention are swept."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from shared.settings import Settings
from shared.storage import LocalStorage


def test_local_store_sweeps_results_past_retention(tmp_path: Path) -> None:
    store = LocalStorage(Settings(storage_dir=tmp_path))
    old, new = tmp_path / "videos" / "old.mp4", tmp_path / "videos" / "new.mp4"
    old.parent.mkdir()
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    assert store.delete_older_than(2) == 1
    assert not old.exists() and new.exists()
    assert json.loads(json.dumps({"kept": new.name})) == {"kept": "new.mp4"}
