"""The per-request record written cheaply: the access-log record, the metrics it updates and the console's rings
hold exactly what the plain ways (`makeRecord`, `labels()` per request, dicts built at once) gave."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from router.console.rings import MAX_LOG_CHARS, LogRing, RecentRequests
from router.exchange import Exchange
from router.logs import MAX_GATHERED, LineHandler, log_fields
from router.metrics import Metrics


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[tuple[logging.Logger, Keep]]:
    logger = logging.getLogger("agentgate.test-record")
    keep = Keep()
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    yield logger, keep
    logger.removeHandler(keep)


@pytest.fixture
def no_thread_data() -> Iterator[None]:
    names = ("logThreads", "logProcesses", "logMultiprocessing")
    saved = [getattr(logging, n) for n in names]
    for n in names:
        setattr(logging, n, False)
    yield
    for n, v in zip(names, saved, strict=True):
        setattr(logging, n, v)


TIMES = ("created", "msecs", "relativeCreated", "message", "asctime")  # + what a handler's formatter adds


@pytest.mark.parametrize("fast", [True, False])
def test_the_record_has_what_a_made_record_has(kept: tuple[logging.Logger, Keep], fast: bool,
                                               request: pytest.FixtureRequest) -> None:
    if fast:
        request.getfixturevalue("no_thread_data")
    logger, keep = kept
    for n in range(3):  # the first makes the template, the others copy it
        log_fields(logger, "request", {"n": n})
    made = logger.makeRecord(logger.name, logging.INFO, "", 0, "request", (), None, extra={"fields": {"n": 2}})
    got = keep.records[-1]
    assert type(got) is logging.LogRecord
    assert set(vars(got)) - {"message", "asctime"} == set(vars(made))
    assert {k: v for k, v in vars(got).items() if k not in TIMES} == {k: v for k, v in vars(made).items()
                                                                        if k not in TIMES}
    assert [r.fields for r in keep.records] == [{"n": 0}, {"n": 1}, {"n": 2}]  # type: ignore[attr-defined]
    assert got.created <= made.created and made.created - got.created < 60
    assert got.msecs == int((got.created - int(got.created)) * 1000)
    assert got.relativeCreated == pytest.approx(made.relativeCreated - (made.created - got.created) * 1000, abs=1)
    assert got.getMessage() == "request"


def test_a_custom_record_factory_is_used(kept: tuple[logging.Logger, Keep], no_thread_data: None) -> None:
    logger, keep = kept

    class Mine(logging.LogRecord):
        pass

    old = logging.getLogRecordFactory()
    logging.setLogRecordFactory(Mine)
    try:
        log_fields(logger, "request", {"a": 1})
    finally:
        logging.setLogRecordFactory(old)
    assert type(keep.records[-1]) is Mine and keep.records[-1].fields == {"a": 1}  # type: ignore[attr-defined]


def old_finish(ex: Exchange, m: Metrics, elapsed: float) -> None:
    """What `Exchange.finish` did to the metrics with `labels()` on every request."""
    model = ex.model or "-"
    m.requests.labels(model, ex.provider or "-", ex.endpoint, str(ex.final_status)).inc()
    m.duration.labels(model, ex.endpoint).observe(elapsed)
    if ex.ttft is not None:
        m.ttft.labels(model).observe(ex.ttft)
    for kind, count in (("prompt", ex.prompt_tokens), ("completion", ex.completion_tokens),
                        ("cached", ex.cached_tokens)):
        if count:
            m.tokens.labels(model, kind).inc(count)
    if ex.tool_outcome is not None:
        m.tool_calls.labels(model, ex.tool_outcome, "yes" if ex.constrained else "no").inc()
        for kind in ex.repairs:
            m.repairs.labels(model, kind).inc()
        for reason in ex.failures:
            m.tool_failures.labels(model, reason).inc()
    if ex.key_name is not None:
        m.key_requests.labels(ex.key_name).inc()
        if ex.prompt_tokens:
            m.key_tokens.labels(ex.key_name, "prompt").inc(ex.prompt_tokens)
        if ex.completion_tokens:
            m.key_tokens.labels(ex.key_name, "completion").inc(ex.completion_tokens)


def exchanges() -> list[Exchange]:
    out = []
    for i in range(40):
        ex = Exchange(f"id{i}", ("chat", "messages")[i % 2], model=("a", "b", "")[i % 3],
                      provider=("p", "")[i % 2 if i % 3 else 0], status=(200, 400, 0)[i % 3])
        ex.stream = i % 4 == 0
        ex.ttft = 0.002 * i if ex.stream else None
        ex.prompt_tokens = i * 3 if i % 5 else None
        ex.completion_tokens = i if i % 7 else 0
        ex.cached_tokens = i if i % 11 == 0 else None
        ex.tool_outcome = ("valid", "repaired", "failed", None)[i % 4]
        ex.constrained = i % 6 == 0
        ex.repairs = ["fence"] if ex.tool_outcome == "repaired" else []
        ex.failures = ["invalid_json"] if ex.tool_outcome == "failed" else []
        ex.key_name = "alice" if i % 3 == 1 else None
        out.append(ex)
    return out


def scrape(m: Metrics) -> str:
    text = m.render().decode()
    text = re.sub(r"(_created\{[^}]*\}|_created) \S+", r"\1 T", text)  # when each series was made
    return re.sub(r"(agentgate_config_last_reload_success_timestamp_seconds) \S+", r"\1 T", text)


def test_the_metrics_are_what_labels_per_request_gave(monkeypatch: pytest.MonkeyPatch) -> None:
    now, old = Metrics(), Metrics()
    clock = iter(x * 0.0131 for x in range(1, 10**6))
    monkeypatch.setattr("router.exchange.time.perf_counter", lambda: next(clock))
    for ex in exchanges():
        ex.started = 0.0
        ex.finish(now, log_enabled=False)
    for ex, elapsed in zip(exchanges(), (x * 0.0131 for x in range(1, 41)), strict=True):
        old_finish(ex, old, elapsed)
    assert scrape(now) == scrape(old)
    assert all(label in scrape(now) for label in ('type="cached"', 'constrained="yes"', 'outcome="failed"'))


def test_the_rings_answer_as_before() -> None:
    recent, ring = RecentRequests(size=3), LogRing(size=3)
    logger = logging.getLogger("agentgate.test-rings")
    logger.addHandler(ring)
    logger.setLevel(logging.INFO)
    try:
        for i in range(4):
            fields: dict[str, object] = {"request_id": f"r{i}", "model": "m" * (MAX_LOG_CHARS + 5) if i == 3 else "m"}
            recent.observe(None, fields)
            logger.info("line %d", i, extra={"fields": fields})
        logger.warning("no fields")
    finally:
        logger.removeHandler(ring)
    got = recent.all()
    assert [r["seq"] for r in got] == [2, 3, 4] and got[0]["request_id"] == "r1" and isinstance(got[0]["ts"], float)
    assert list(got[0]) == ["seq", "ts", "request_id", "model"]
    assert recent.after(3) == got[2:] and recent.last == 4
    lines = ring.after(0)
    assert [x["seq"] for x in lines] == [3, 4, 5] and ring.last == 5
    assert lines[0] == {"seq": 3, "ts": lines[0]["ts"], "level": "info", "logger": "agentgate.test-rings",
                        "msg": "line 2", "fields": {"request_id": "r2", "model": "m"}}
    assert lines[1]["fields"]["model"] == "m" * MAX_LOG_CHARS + "..."
    assert "fields" not in lines[2] and lines[2]["level"] == "warning"
    assert ring.after(4, limit=1) == lines[2:]


def test_setup_logging_turns_off_what_no_format_shows() -> None:
    code = ("import logging; from router.logs import setup_logging; setup_logging('json'); "
            "print(logging.logThreads, logging.logProcesses, logging.logMultiprocessing)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


class Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, LineHandler, Writes]]:
    logger = logging.getLogger("agentgate.test-lines")
    out = Writes()
    handler = LineHandler()
    handler.setStream(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler, out
    logger.removeHandler(handler)


async def test_lines_of_one_loop_pass_are_written_together(lines: tuple[logging.Logger, LineHandler, Writes]) -> None:
    logger, handler, out = lines
    logger.info("before")  # not gathering yet: written at once
    assert out.calls == ["INFO before\n"]
    handler.gather_on(asyncio.get_running_loop())
    try:
        for n in range(3):
            logger.info("request %d", n)
        assert out.calls == ["INFO before\n"]  # held until the loop gets to its callbacks
        await asyncio.sleep(0)
        assert out.calls[1:] == ["INFO request 0\nINFO request 1\nINFO request 2\n"]
        logger.info("held")
        logger.warning("at once")  # after what was held, in one write
        assert out.calls[2:] == ["INFO held\nWARNING at once\n"]
        logger.info("held again")
        await asyncio.to_thread(logger.info, "from a thread")  # another thread's line is written at once
        assert "".join(out.calls[3:]) == "INFO held again\nINFO from a thread\n"  # in order (the loop may have
        await asyncio.sleep(0)  # written the held line while the thread ran)
        written = len(out.calls)
        for n in range(MAX_GATHERED):
            logger.info("many %d", n)
        assert len(out.calls) == written + 1 and out.calls[-1].count("\n") == MAX_GATHERED  # the bound
        logger.info("last")
    finally:
        handler.gather_on(None)  # writes what is held
    assert out.calls[written + 1:] == ["INFO last\n"]
    await asyncio.sleep(0)
    assert len(out.calls) == written + 2  # the scheduled write found nothing left
    assert out.getvalue().count("\n") == 1 + 3 + 2 + 2 + MAX_GATHERED + 1


def test_serve_logs_through_one_line_handler() -> None:
    code = ("import logging; from router.logs import setup_logging, LineHandler; setup_logging('text'); "
            "print([type(h).__name__ for h in logging.getLogger().handlers])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['LineHandler']"
