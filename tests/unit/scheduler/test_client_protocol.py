"""What both Python clients share, alone: reading the event stream, the retry rule, and the submission
they send."""

from __future__ import annotations

import json

import httpx

from scheduler.client.protocol import Backoff, EventReader, batches_listing, jobs_listing, submit_call

JOB = {
    "id": "job_1", "status": "running", "model": "m", "model_version": "tiny-random", "gpu_type": "CPU",
    "region": "local", "created_at": "2026-11-27T00:00:00Z", "links": {"self": "/v1/jobs/job_1"},
    "request": {}, "progress": {"phase": "denoising", "step": 3, "total": 10, "fraction": 0.3},
}  # fmt: skip


def _events(reader: EventReader, text: str) -> list[object]:
    return [e for line in text.split("\n") if (e := reader.feed(line)) is not None]


def test_events_are_decoded_and_the_last_id_kept_for_resuming() -> None:
    progress = {"id": "job_1", "status": "running", "progress": JOB["progress"]}
    stream = (
        f"id: 1-0\nevent: status\ndata: {json.dumps(JOB)}\n\n"
        ": heartbeat\n\n"
        f"id: 2-0\nevent: progress\ndata: {json.dumps(progress)}\n\n"
    )
    reader = EventReader()
    assert reader.headers() == {}
    status, step = _events(reader, stream)
    assert (status.type, status.id, status.job.id, status.progress.step) == ("status", "1-0", "job_1", 3)  # type: ignore[attr-defined]
    assert (step.type, step.job, step.progress.phase, step.progress.total) == (
        "progress",
        None,
        "denoising",
        10,
    )  # type: ignore[attr-defined]
    assert reader.headers() == {"Last-Event-ID": "2-0"}


def test_a_data_field_split_over_lines_is_joined() -> None:
    half = len(json.dumps(JOB)) // 2
    text = json.dumps(JOB)
    [event] = _events(
        EventReader(), f"id: 7-0\nevent: completed\ndata: {text[:half]}\ndata:{text[half:]}\n\n"
    )
    assert event.type == "completed" and event.status == "running"  # type: ignore[attr-defined]


def test_drops_are_retried_until_max_retries_and_an_event_resets_the_count() -> None:
    backoff = Backoff(max_retries=2, base_s=1, max_s=10)
    reader = EventReader("5-0")
    assert reader.dropped(backoff) is not None and reader.dropped(backoff) is not None
    _events(reader, f"id: 6-0\nevent: status\ndata: {json.dumps(JOB)}\n\n")
    assert reader.failures == 0 and reader.headers() == {"Last-Event-ID": "6-0"}
    assert [reader.dropped(backoff) is None for _ in range(3)] == [False, False, True]


def test_backoff_retries_429_and_503_only_and_honours_retry_after() -> None:
    backoff = Backoff(max_retries=3, base_s=0.5, max_s=30)
    assert backoff.after_answer(1, httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert backoff.after_answer(1, httpx.Response(503, headers={"Retry-After": "999"})) == 30.0
    assert 1.0 <= backoff.after_answer(3, httpx.Response(503)) <= 2.0  # type: ignore[operator]
    assert backoff.after_answer(4, httpx.Response(503)) is None  # out of retries: the answer stands
    assert backoff.after_answer(1, httpx.Response(500)) is None
    assert backoff.after_answer(1, httpx.Response(200)) is None
    assert backoff.after_error(3) is not None and backoff.after_error(4) is None


def test_every_submission_has_an_idempotency_key_and_waits_stretch_the_timeout() -> None:
    plain = submit_call({"prompt": "a"}, {"seed": 2}, None, None, 30)
    again = submit_call({"prompt": "a"}, {}, None, None, 30)
    assert plain.options["json"] == {"prompt": "a", "seed": 2}
    assert plain.options["headers"]["Idempotency-Key"] != again.options["headers"]["Idempotency-Key"]
    assert "Prefer" not in plain.options["headers"] and "timeout" not in plain.options  # the client's
    waiting = submit_call({"prompt": "a"}, {}, 60, "mine", 30)
    assert waiting.options["headers"] == {"Idempotency-Key": "mine", "Prefer": "wait=60"}
    assert waiting.options["timeout"] == 90


def test_an_event_cut_by_a_drop_is_read_whole_from_the_resumed_stream() -> None:
    reader = EventReader()
    text = json.dumps(JOB)
    assert _events(reader, f"id: 1-0\nevent: status\ndata: {text[:20]}") == []
    assert reader.dropped(Backoff()) is not None
    [event] = _events(reader, f"id: 1-0\nevent: status\ndata: {text}\n\n")
    assert (event.id, event.job_id) == ("1-0", "job_1")  # type: ignore[attr-defined]


def test_a_listing_pages_until_the_cursor_ends_or_the_limit_is_reached() -> None:
    listing = batches_listing(page_size=2)
    assert listing.page(None).options["params"] == {"limit": 2}
    assert listing.page("17.5").options["params"] == {"limit": 2, "cursor": "17.5"}
    page = {"batches": ["a", "b"], "next_cursor": "9.0"}
    assert listing.take(page, 0, None) == (["a", "b"], "9.0")
    assert listing.take(page, 0, 2) == (["a", "b"], None)  # the limit is reached: no further page
    assert listing.take(page, 2, 3) == (["a"], None)
    assert listing.take({"batches": ["c"], "next_cursor": None}, 0, None) == (["c"], None)
    assert jobs_listing("queued", 5).page(None).options["params"] == {"limit": 5, "status": "queued"}
    assert jobs_listing(None, 5).page(None).options["params"] == {"limit": 5}
