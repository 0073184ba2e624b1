"""What each process imports: the API and the webhook delivery worker start without torch."""

from __future__ import annotations

import subprocess
import sys


def test_scheduler_never_imports_torch_or_diffusers() -> None:
    code = (
        "import sys, scheduler.api.app, scheduler.dev.cli; print({'torch', 'diffusers'} & set(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"


def test_delivery_worker_never_imports_torch() -> None:
    code = (
        "import sys, shared.webhooks.delivery; "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
