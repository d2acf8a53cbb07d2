"""Background training jobs with a server-wide limit on how many train at once; the rest wait in a queue."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time

import torch

from .data import ImageDataset
from .models import ModelSpec, TrainSpec, build_model
from .projection import aligned_frame
from .train import TrainingDiverged, best_epoch, check_fit, fit

log = logging.getLogger(__name__)

# Training threads share one process: each job gets its own core rather than all jobs fighting over every core.
MAX_JOBS = int(os.environ.get("AECORE_MAX_JOBS", max(1, (os.cpu_count() or 1))))
THREADS_PER_JOB = max(1, (os.cpu_count() or 1) // MAX_JOBS)
# Training runs behind the pages: where the cores are contended, a job's thread gives way to the server's page runs.
# With two conv jobs training on the 2-core Xeon, the Denoise slider's server run took 58 ms against 79 ms at equal
# priority (8 alternated blocks in one process); alone, a job trains as fast as before.
JOB_NICENESS = 10

_slots = threading.Semaphore(MAX_JOBS)
_queue: list["TrainingJob"] = []
_queue_lock = threading.Lock()
# what a report adds to its history entry: pictures and codes for the live view
PREVIEW_KEYS = ("inputs", "reconstructions", "codes", "map", "epochs")


class TrainingJob:
    """One training run in a background thread: its reports per epoch, its status, and a stop switch."""

    def __init__(self, name: str, dataset_name: str, train: ImageDataset, val: ImageDataset | None,
                 model_spec: ModelSpec, train_spec: TrainSpec):
        self.name, self.dataset_name, self.train, self.val = name, dataset_name, train, val
        self.model_spec, self.train_spec = model_spec, train_spec
        self.model = build_model(model_spec, seed=train_spec.seed)
        self.status = "queued"  # queued, running, done, stopped, failed
        self.error: str | None = None
        self.reports: list[dict] = []
        self.history: list[dict] = []
        self.started = self.finished = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"train-{name}", daemon=True)

    def start(self) -> "TrainingJob":
        """Queue the job and return it; it starts training as soon as a slot is free."""
        with _queue_lock:
            _queue.append(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the job to end after the current step, keeping the best weights so far."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the job's thread to end."""
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        """Return True once the job has finished, stopped or failed."""
        return self.status in ("done", "stopped", "failed")

    @property
    def usable(self) -> bool:
        """Return True once the job has ended with at least one finished epoch: its model holds its best weights."""
        return self.done and bool(self.history)

    @property
    def best_epoch(self) -> int | None:
        """Return the epoch whose weights the model holds once the job has ended (None before, or if none ended)."""
        return best_epoch(self.history) if self.done else None

    @property
    def queue_position(self) -> int:
        """Return the job's place among queued jobs (1 is next), or 0 when not queued."""
        with _queue_lock:
            waiting = [j for j in _queue if j.status == "queued"]
        return waiting.index(self) + 1 if self in waiting else 0

    @property
    def progress(self) -> float:
        """Return the fraction of epochs done, from 0 to 1."""
        return len(self.reports) / self.train_spec.epochs

    @property
    def eta_seconds(self) -> float | None:
        """Return the estimated seconds left, from the mean epoch time so far."""
        if not self.reports or self.done:
            return None
        per_epoch = sum(r["seconds"] for r in self.reports) / len(self.reports)
        return per_epoch * (self.train_spec.epochs - len(self.reports))

    @property
    def history_so_far(self) -> list[dict]:
        """Return the history of the epochs finished so far (the final history once the job has ended)."""
        if self.history:
            return self.history
        return [{k: v for k, v in r.items() if k not in PREVIEW_KEYS} for r in list(self.reports)]

    def _on_epoch(self, report: dict) -> None:
        previous = self.reports[-1]["map"] if self.reports else None
        report["map"] = aligned_frame(report["codes"], previous)
        self.reports.append(report)

    def _run(self) -> None:
        with _slots:
            with _queue_lock:
                _queue.remove(self)
            if self._stop.is_set():
                self.finished, self.status = time.time(), "stopped"
                return
            self.status, self.started = "running", time.time()
            torch.set_num_threads(THREADS_PER_JOB)
            _lower_thread_priority()
            status = "failed"
            try:
                self.history = fit(self.model, self.train, self.val, self.train_spec,
                                   on_epoch=self._on_epoch, stop=self._stop)
                status = "stopped" if self._stop.is_set() else "done"
            except TrainingDiverged as e:  # the settings' fault, not the server's: one line, no traceback
                log.warning("training job %s: %s", self.name, e)
                self.history, self.error = e.history, str(e)
            except Exception as e:  # a job's failure ends that job only; the server and other sessions go on
                log.exception("training job %s failed", self.name)
                self.history = self.history_so_far
                kept = (f"; the weights of epoch {best_epoch(self.history)}, the best so far, are kept"
                        if self.history else "")
                self.error = f"Training failed: {e}{kept}."
            finally:
                self.model.to("cpu").eval()
                self.finished = time.time()
                # last: a page that sees the job ended finds its model back on the CPU and its end time set (a
                # 2-hour soak once drew "done" with no end time yet)
                self.status = status


def _lower_thread_priority() -> None:
    """Make the calling thread, and the threads it starts, JOB_NICENESS nicer than it was (Linux schedules threads
    one by one, each with its own nice value); elsewhere leave it as it is."""
    if sys.platform.startswith("linux"):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + JOB_NICENESS))


def check_settings(model_spec: ModelSpec, train_spec: TrainSpec, n_train: int) -> None:
    """Return None when fit() would accept these settings on n_train images, else raise its ValueError (naming the field)."""
    check_fit(model_spec, train_spec, model_spec.input_shape, n_train)


_owners: dict[TrainingJob, tuple[str, float]] = {}  # job -> (owner session id, when it was last seen alive)
_owners_lock = threading.Lock()


def register(job: TrainingJob, owner: str) -> None:
    """Record which browser session owns a job, so the job can be stopped when that session goes away."""
    with _owners_lock:
        _owners[job] = (owner, time.time())


def stop_orphaned(is_alive, grace_seconds: float = 30.0, now: float | None = None) -> list[TrainingJob]:
    """Stop and return the jobs whose owner has not been alive for `grace_seconds`; forget finished jobs."""
    now = time.time() if now is None else now
    stopped = []
    with _owners_lock:
        for job, (owner, seen) in list(_owners.items()):
            if job.done:
                del _owners[job]
            elif is_alive(owner):
                _owners[job] = (owner, now)
            elif now - seen > grace_seconds:
                job.stop()
                stopped.append(job)
                del _owners[job]
    if stopped:
        log.info("stopped %d training job(s) whose browser session closed", len(stopped))
    return stopped
