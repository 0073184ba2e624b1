"""Celery app for Flower (`celery -A scheduler.flower flower`): the broker from settings, no worker code."""

from shared.broker import make_celery
from shared.settings import get_settings

app = make_celery(get_settings())
