"""Job control on the real SQL store: completion-window expiry ends every line exactly once."""

from __future__ import annotations

import datetime as dt
import json

from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.pipeline.control import expire_overdue, get_job
from switchyard.pipeline.finalize import finalize_job, iter_lines
from switchyard.pipeline.intake import submit_job
from switchyard.store.db import session_scope
from switchyard.store.models import Request, RequestState, utcnow


def test_a_job_past_its_window_expires_with_unrun_requests_in_the_error_file(settings: Settings) -> None:
    lines = [json.dumps({"custom_id": f"r{i}", "prompt": f"p{i}"}).encode() for i in range(4)] + [b"{bad"]
    plan = submit_job(settings, lines, catalog=Catalog.load(None), completion_window=dt.timedelta(hours=1))
    with session_scope(settings) as s:  # one request already answered before the window closed
        r0 = next(r for r in s.query(Request).filter(Request.job_id == plan.job_id, Request.custom_id == "r0"))
        r0.state, r0.response = RequestState.succeeded, {"body": {"choices": []}}
    from switchyard.pipeline.counters import bump_job

    with session_scope(settings) as s:
        bump_job(s, plan.job_id, succeeded=1)
    assert expire_overdue(settings, now=utcnow()) == []  # still inside its window
    assert expire_overdue(settings, now=utcnow() + dt.timedelta(hours=2)) == [plan.job_id]
    assert expire_overdue(settings, now=utcnow() + dt.timedelta(hours=2)) == []  # idempotent
    assert finalize_job(settings, plan.job_id) == "expired"
    rendered = list(iter_lines(settings, plan.job_id))
    outs = [line for ok, line in rendered if ok]
    errs = [line for ok, line in rendered if not ok]
    assert [o["custom_id"] for o in outs] == ["r0"]
    assert sorted(e["error"]["code"] for e in errs) == ["expired", "expired", "expired", "invalid_json"]
    job = get_job(settings, plan.job_id)
    assert (job.status, job.n_succeeded, job.n_failed, job.n_invalid) == ("expired", 1, 3, 1)
