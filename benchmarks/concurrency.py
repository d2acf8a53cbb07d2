"""Concurrent training: 1, 2 and 4 aecore.jobs.TrainingJobs at once in one process, under several thread policies."""
from __future__ import annotations

import threading
import time

import torch

import aecore as ae
from aecore import jobs

from .common import median, pause

# (jobs training at once, intra-op threads per job); aecore.jobs' own choice is added at run time
POLICIES = {"1 at a time, 2 threads": (1, 2), "2 at once, 1 thread each": (2, 1), "2 at once, 2 threads each": (2, 2)}


def _run_jobs(train, model_spec, train_spec, n: int, max_jobs: int, threads: int) -> float:
    """Return the total samples/s of n jobs started together under a limit of max_jobs with `threads` each."""
    saved = jobs._slots, jobs.THREADS_PER_JOB
    jobs._slots, jobs.THREADS_PER_JOB = threading.Semaphore(max_jobs), threads
    try:
        started = [jobs.TrainingJob(f"bench-{i}", "mnist", train, None, model_spec, train_spec) for i in range(n)]
        t0 = time.perf_counter()
        for job in started:
            job.start()
        for job in started:
            job.join()
        seconds = time.perf_counter() - t0
    finally:
        jobs._slots, jobs.THREADS_PER_JOB = saved
    failed = [j.error for j in started if j.status != "done"]
    if failed:
        raise RuntimeError(f"a benchmark job failed: {failed[0]}")
    return n * train_spec.epochs * len(train) / seconds


def run(train, preset: str = "deep", counts=(1, 2, 4), epochs: int = 2, rounds: int = 2, log=print) -> dict:
    """Return {policy: {jobs: median total samples/s}} and aecore.jobs' own policy, with the policies alternating."""
    model_spec, _ = ae.preset(preset, train.shape)
    train_spec = ae.TrainSpec(epochs=epochs, seed=0)
    own = (jobs.MAX_JOBS, jobs.THREADS_PER_JOB)
    policies = {f"aecore.jobs: {own[0]} at once, {own[1]} thread(s) each": own,
                **{k: v for k, v in POLICIES.items() if v != own}}
    speeds = {p: {n: [] for n in counts} for p in policies}
    threads = torch.get_num_threads()
    for _ in range(rounds):
        pause(log)
        for n in counts:
            for name, (max_jobs, per_job) in policies.items():
                speeds[name][n].append(_run_jobs(train, model_spec, train_spec, n, max_jobs, per_job))
                log(f"  {n} job(s), {name:36} {speeds[name][n][-1]:8.0f} samples/s in total")
    torch.set_num_threads(threads)
    table = {p: {n: median(v) for n, v in by_n.items()} for p, by_n in speeds.items()}
    return {"preset": preset, "epochs": epochs, "rounds": rounds, "max_jobs": jobs.MAX_JOBS,
            "threads_per_job": jobs.THREADS_PER_JOB, "samples_per_s": table}
