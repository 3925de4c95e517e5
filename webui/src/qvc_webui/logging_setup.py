"""JSON-lines logging that never blocks a request.

Every sink (stdout, the per-instance file) has its own bounded queue drained by its own
daemon thread.  Emitting a record is a ``put_nowait``; when a sink's queue is full (for
example the log filesystem stalls) the line is dropped and counted instead of blocking.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import logging.handlers
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Callable, TextIO

_RESERVED = set(vars(logging.makeLogRecord({})))  # standard LogRecord attributes
_installed: list["NonBlockingSink"] = []


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = static or {}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_") and key not in ("message", "asctime"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class NonBlockingSink(logging.Handler):
    """A handler that formats in the caller, then hands the line to a writer thread."""

    def __init__(self, stream_factory: Callable[[], TextIO], maxsize: int, name: str,
                 on_drop: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize=maxsize)
        self.sink_name = name
        self.dropped = 0
        self._on_drop = on_drop
        self._stream_factory = stream_factory
        self._thread = threading.Thread(target=self._run, name=f"log-{name}", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # pragma: no cover - formatting bug must not break a request
            return
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            if self._on_drop:
                self._on_drop(self.sink_name)

    def _run(self) -> None:
        stream: TextIO | None = None
        while True:
            line = self.queue.get()
            if line is None:
                break
            try:
                if stream is None:
                    stream = self._stream_factory()
                stream.write(line + "\n")
                if self.queue.empty():
                    stream.flush()
            except Exception:
                stream = None  # reopen next time (e.g. after a remount); line is lost

    def close(self) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        super().close()

    def flush_wait(self, timeout: float = 2.0) -> None:
        """Best effort: wait until queued lines are written (tests, shutdown)."""
        import time

        deadline = time.monotonic() + timeout
        while not self.queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)


def setup_logging(level: str, log_dir: str | None, instance_id: str, static: dict[str, Any],
                  queue_size: int = 10_000, on_drop: Callable[[str], None] | None = None) -> Path | None:
    """Install the JSON sinks on the root logger.  Returns the log file path (or None)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, NonBlockingSink):
            root.removeHandler(h)
            h.close()
    _installed.clear()
    fmt = JsonFormatter(static)
    stdout = NonBlockingSink(lambda: sys.stdout, queue_size, "stdout", on_drop)
    stdout.setFormatter(fmt)
    root.addHandler(stdout)
    _installed.append(stdout)
    log_file: Path | None = None
    if log_dir:
        log_file = Path(log_dir) / f"qvc-webui-{instance_id}.log"
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            # open lazily in the writer thread: a hung filesystem only stalls that thread
            path = log_file
            filesink = NonBlockingSink(lambda: open(path, "a", encoding="utf-8"), queue_size, "file", on_drop)
            filesink.setFormatter(fmt)
            root.addHandler(filesink)
            _installed.append(filesink)
        except OSError as exc:
            logging.getLogger(__name__).warning("log dir unusable, logging to stdout only",
                                                extra={"log_dir": log_dir, "error": str(exc)})
            log_file = None
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "gradio"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware writes access lines
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return log_file


def flush_logs(timeout: float = 2.0) -> None:
    for sink in _installed:
        sink.flush_wait(timeout)
