"""What every benchmark shares: the MNIST splits, medians, the machine's description and a wait for a quiet machine."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mnist_dir() -> Path:
    """Return the folder of the MNIST IDX files: $AECORE_DATA_DIR/mnist, else ../shared/data/mnist."""
    base = os.environ.get("AECORE_DATA_DIR")
    for folder in ([Path(base) / "mnist"] if base else []) + [ROOT.parent / "shared" / "data" / "mnist",
                                                             ROOT / ".devwork" / "mnist"]:
        if folder.is_dir():
            return folder
    raise SystemExit("MNIST not found: set AECORE_DATA_DIR to a folder holding mnist/t10k-images-idx3-ubyte.gz")


def mnist(split: str = "train"):
    """Return the MNIST split ("train": images 0-7,999 of the test file, "heldout": 8,000-9,999) as an ImageDataset."""
    import aecore as ae

    return ae.load_dataset("idx:" + str(mnist_dir()), split)


def median(values) -> float:
    """Return the median of the values."""
    return float(statistics.median(values))


def load_average() -> float:
    """Return the 1-minute load average."""
    return os.getloadavg()[0]


def _cpu_ticks() -> tuple[int, int] | None:
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values), values[3] + values[4]  # all ticks, idle + iowait ticks


def busy_fraction(seconds: float = 3.0) -> float:
    """Return the fraction of all cores busy over the next `seconds` (from /proc/stat; 0 where it is unreadable)."""
    a = _cpu_ticks()
    time.sleep(seconds)
    b = _cpu_ticks()
    if a is None or b is None or b[0] == a[0]:
        return 0.0
    return 1 - (b[1] - a[1]) / (b[0] - a[0])


class OtherLoad:
    """Measures the share of all cores that other processes used between start() and stop()."""

    def start(self) -> "OtherLoad":
        """Start measuring and return self."""
        self.ticks, self.own = _cpu_ticks(), self._own()
        return self

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> float:
        """Return the fraction (0-1) of all cores that other processes used since start(), counting the time a
        virtual machine's host took from it (steal), which /proc/stat counts as busy."""
        ticks, own = _cpu_ticks(), self._own()
        if ticks is None or self.ticks is None or ticks[0] == self.ticks[0]:
            return 0.0
        hz = os.sysconf("SC_CLK_TCK")
        busy = (ticks[0] - self.ticks[0]) - (ticks[1] - self.ticks[1])
        return max(0.0, (busy - (own - self.own) * hz) / (ticks[0] - self.ticks[0]))


def wait_until_quiet(max_wait_s: float = 1200.0, log=print) -> float:
    """Return the share of the CPU other processes use, once it is under 10% (sampled while this process sleeps),
    or after waiting at most max_wait_s (then measure anyway)."""
    t0 = time.time()
    while (busy := busy_fraction(1.5)) >= 0.1 and time.time() - t0 < max_wait_s:
        log(f"  waiting for a quiet machine: other processes use {busy:.0%} of the CPU")
        time.sleep(10)
    return busy


_pause_s = 0.0


def wait_between_rounds(max_wait_s: float) -> None:
    """Make pause() wait up to max_wait_s for a quiet machine (0: never wait)."""
    global _pause_s
    _pause_s = max_wait_s


def pause(log=print) -> None:
    """Wait for a quiet machine before a round of measurements, if asked to (see wait_between_rounds)."""
    if _pause_s:
        wait_until_quiet(_pause_s, log)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    """Return the machine and the versions that produced a result: CPU, cores, Python, torch and the rest."""
    import torch

    from aecore.train import _cpu_has_bf16

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "bf16_instructions": _cpu_has_bf16(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }
    info.update({p: _version(p) for p in ("torch", "numpy", "scikit-learn", "openTSNE", "umap-learn", "numba")})
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["commit"] = "unknown"
    return info


def in_fresh_python(code: str, timeout: float = 600.0, threads: int | None = None) -> str:
    """Return the stdout of `code` run in a fresh Python interpreter from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"subprocess failed: {out.stderr.strip()[-2000:]}")
    return out.stdout


@contextmanager
def environment(**values: str):
    """Set environment variables within, restoring the old ones after (a server started inside inherits them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def server_pid(port: int | str) -> int | None:
    """Return the process id of this process's child serving the port (the streamlit server), None if not found."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = Path(f"/proc/{pid}/cmdline").read_text()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and str(port) in cmdline.split("\0"):
            return int(pid)
    return None
