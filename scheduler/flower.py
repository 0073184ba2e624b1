"""Celery app for Flower (`celery -A scheduler.flower flower --basic-auth=...`): the broker from settings,
the pool queues declared so Flower's broker view lists them, and no worker code.

Flower never runs open: it takes `REELFORGE_FLOWER_BASIC_AUTH` as its basic auth however it is started
(an explicit `--basic-auth` wins). Flower 2.2 leaves `/metrics` outside its own authentication; it is put
behind it here, so an unauthenticated scrape gets 401 like the UI.
"""

import os

import tornado.web
from flower.views.monitor import Metrics
from kombu import Queue

from shared import keys
from shared.broker import make_celery
from shared.settings import get_settings

settings = get_settings()
app = make_celery(settings)
# Flower reads its own FLOWER_* variables after this module is imported: it always gets our one setting.
os.environ.setdefault("FLOWER_BASIC_AUTH", settings.flower_basic_auth)
app.conf.task_queues = [Queue(p.queue) for p in settings.pools] + [Queue(keys.WEBHOOK_QUEUE)]

Metrics.get = tornado.web.authenticated(Metrics.get)
