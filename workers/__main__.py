"""`python -m workers`: one solo-pool Celery worker on this node's pool queue (from settings)."""

import os
import socket
import sys

from workers.tasks import celery_app, settings

if __name__ == "__main__":
    name = (
        os.environ.get("REELFORGE_WORKER_NAME")
        or f"{settings.worker_queue}-{os.getpid()}@{socket.gethostname()}"
    )
    argv = ["worker", "-P", "solo", "-c", "1", "-Q", settings.worker_queue, "-n", name, "-E"]
    argv += [
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        os.environ.get("REELFORGE_LOG_LEVEL", "INFO"),
    ]
    celery_app.worker_main([*argv, *sys.argv[1:]])
