import math
import os
import sys
import threading

import pytest

import aecore as ae


def _job(digits_split, name, epochs=200):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train=dict(epochs=epochs))
    return ae.jobs.TrainingJob(name, "digits", train, val, model_spec, train_spec)


def test_a_job_trains_in_the_background_and_reports_each_epoch(digits_split):
    job = _job(digits_split, "bg", epochs=3).start()
    job.join(120)
    assert job.status == "done" and job.progress == 1.0
    assert [r["epoch"] for r in job.reports] == [1, 2, 3]
    assert job.reports[-1]["map"].shape == (len(digits_split[1]), 2)
    assert job.history[-1]["val"]["total"] < job.history[0]["val"]["total"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own nice values on Linux only")
def test_a_job_trains_at_a_lower_priority_than_the_pages(digits_split):
    # the sliders of a class stay quick while its jobs train: a job's thread gives way where the cores are contended
    job = _job(digits_split, "nice", epochs=2)
    seen = []
    on_epoch = job._on_epoch
    job._on_epoch = lambda report: (seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())),
                                    on_epoch(report))
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    job.start().join(120)
    assert job.status == "done"
    assert seen == [min(19, mine + ae.jobs.JOB_NICENESS)] * 2
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the page's thread keeps its own


def test_jobs_of_a_closed_session_are_stopped_after_a_grace_period(digits_split):
    mine, theirs = _job(digits_split, "mine").start(), _job(digits_split, "theirs").start()
    ae.jobs.register(mine, "session-a")
    ae.jobs.register(theirs, "session-b")
    alive = {"session-a": True, "session-b": False}
    assert ae.jobs.stop_orphaned(alive.get, grace_seconds=30) == []  # within the grace period nothing stops
    stopped = ae.jobs.stop_orphaned(alive.get, grace_seconds=30, now=ae.jobs.time.time() + 60)
    assert stopped == [theirs]
    theirs.join(60)
    assert theirs.status == "stopped" and mine.status in ("queued", "running")
    mine.stop()
    mine.join(60)
    assert mine.status == "stopped"


def test_a_failing_job_ends_with_a_message_and_others_go_on(digits_split, caplog):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train=dict(epochs=3, lr=10.0))
    bad = ae.jobs.TrainingJob("bad", "digits", train, val, model_spec, train_spec).start()
    good = _job(digits_split, "good", epochs=2).start()
    bad.join(60)
    good.join(120)
    assert bad.status == "failed" and "lower learning rate" in bad.error
    assert good.status == "done"
    logged = [r for r in caplog.records if "training job bad" in r.getMessage()]
    assert len(logged) == 1 and "diverged" in logged[0].getMessage()  # once, with its cause


def test_a_job_that_crashes_keeps_its_best_weights_and_stays_usable(digits_split, monkeypatch, caplog):
    train, val = digits_split
    job = _job(digits_split, "crash", epochs=5)
    per_epoch = math.ceil(len(train) / job.train_spec.batch_size) + math.ceil(len(val) / ae.models.EVAL_BATCH)
    calls = []

    def crash_in_third_epoch(x, *args):  # a training step failing midway, as a bug or a full memory would
        calls.append(1)
        if len(calls) == 2 * per_epoch + 2:
            raise RuntimeError("out of memory")
        return ae.add_noise(x, *args)

    monkeypatch.setattr(ae.train, "add_noise", crash_in_third_epoch)
    job.start().join(120)
    assert job.status == "failed" and job.usable
    assert "out of memory" in job.error and f"epoch {job.best_epoch}, the best so far" in job.error
    assert [h["epoch"] for h in job.history] == [1, 2]
    val_loss = ae.evaluate_loss(job.model, val, job.train_spec)["total"]
    assert abs(val_loss - job.history[job.best_epoch - 1]["val"]["total"]) < 1e-5
    assert ae.reconstruct(job.model, val.images[:4]).isfinite().all()
    assert "training job crash failed" in caplog.text  # logged once, with its cause


def test_a_job_is_seen_ended_only_once_its_model_and_end_time_are_set(digits_split):
    # pages read a job from other threads: one that reads "done" must find the model handed back and the end time
    # set (a soak once drew a finished run before its end time existed, and the page failed)
    job = _job(digits_split, "ordered", epochs=1)
    seen_at_hand_back = []
    original_eval = job.model.eval
    job.model.eval = lambda: (seen_at_hand_back.append((job.done, job.finished)), original_eval())[1]
    job.start().join(120)
    assert job.status == "done" and job.finished >= job.started
    assert seen_at_hand_back and all(not done and finished is None for done, finished in seen_at_hand_back)
