"""`python -m scheduler`: serve the API with uvicorn on the configured host and port."""

import logging
import re

import uvicorn

from scheduler.api.app import create_app
from shared.settings import get_settings

SIGNATURE = re.compile(r"(?<=[?&])(sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=[^&\s]*")


class RedactSignatures(logging.Filter):
    """Access-log lines keep the path but not the signature of a signed file link: a log reader must
    not be able to replay the link."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                SIGNATURE.sub(r"\1=REDACTED", a) if isinstance(a, str) else a for a in record.args
            )
        return True


if __name__ == "__main__":
    settings = get_settings()
    logging.getLogger("uvicorn.access").addFilter(RedactSignatures())
    # Open event streams only end with their job: past 5 s a shutdown closes them (clients resume).
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        timeout_graceful_shutdown=5,
    )
