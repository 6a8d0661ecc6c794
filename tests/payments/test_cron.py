"""cron_jobs runs the job worker (Stripe kinds included) on Cloud Scheduler's call: authenticated,
recorded, each transfer once."""

from __future__ import annotations

import flask
import psycopg

from shared.config import get_settings
from tests.support.payments import Pay

CRON = "cron-secret-0123456789"


def _call(auth: str | None, body: str = "{}") -> tuple[int, dict]:
    from functions.cron.jobs import cron_jobs

    app = flask.Flask("t")
    with app.test_request_context("/", method="POST", data=body, headers={"Authorization": auth} if auth else {},
                                  content_type="application/json"):
        resp = cron_jobs(flask.request)
        return resp.status_code, resp.get_json()


def test_cron_jobs_pays_out_once_and_records_its_runs(pay: Pay, monkeypatch) -> None:
    monkeypatch.setenv("CRON_SECRET", CRON)
    get_settings.cache_clear()
    customer, mechanic = pay.customer(), pay.mechanic()
    pay.onboard(mechanic)
    paid = pay.paid_booking(customer, plan="video15")
    pay.serve(mechanic, paid["session_id"])
    assert _call(None)[0] == 401
    assert _call("Bearer wrong-secret-000000")[0] == 401
    assert _call(f"Bearer {CRON}", '{"limit": 0}')[0] == 400
    status, first = _call(f"Bearer {CRON}")
    assert status == 200 and first["transfers_paid"] == 1
    status, second = _call(f"Bearer {CRON}")
    assert status == 200 and "transfers_paid" not in second  # nothing left: no second transfer
    assert len(pay.fake.calls_to("POST", "/v1/transfers")) == 1
    with psycopg.connect(pay.url) as conn:
        runs = conn.execute("select ok, result from private.cron_runs where job = 'cron_jobs' order by id").fetchall()
    assert [ok for ok, _ in runs] == [True, True]
    assert runs[0][1]["transfers_paid"] == 1 and "transfers_paid" not in runs[1][1]
