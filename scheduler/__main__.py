"""`python -m scheduler`: serve the API with uvicorn on the configured host and port."""

import uvicorn

from scheduler.api.app import create_app
from shared.settings import get_settings

if __name__ == "__main__":
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")
