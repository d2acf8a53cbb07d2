"""`python benchmarks/memprobe.py run app.py ...`: Streamlit's command line, with a thread that appends one JSON line
of the server's memory to the file named by AECORE_MEMPROBE every AECORE_MEMPROBE_SECONDS (default 30): RSS, the
Python heap's blocks, the garbage collector's collections per generation and frozen objects, glibc malloc's bytes
in use and free, live sessions, the bytes of each Streamlit cache and session state, and (every fourth line) the
most common Python object types and functions. `python -m benchmarks.load --memory-probe PATH` starts the server
this way, so a soak shows where memory goes, not only how much there is.
"""
import collections
import ctypes
import gc
import json
import os
import sys
import threading
import time

_FIELDS = ["arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def malloc_bytes() -> dict:
    """Return glibc's bytes in use, free in its arenas and mapped directly (mallinfo2 over all arenas)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {"in_use": info.uordblks + info.hblkhd, "free": info.fordblks, "mapped": info.hblkhd}


def rss_bytes() -> int:
    """Return this process's resident set size."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def streamlit_memory() -> dict:
    """Return live sessions and the bytes held by each Streamlit cache (st.cache_*, media files, session state)."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return {}
    runtime = Runtime.instance()
    caches: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for stats in runtime.stats_mgr.get_stats().values():
        for stat in stats:
            if hasattr(stat, "byte_length"):
                entry = caches[f"{stat.category_name}:{stat.cache_name}"]
                entry[0] += 1
                entry[1] += stat.byte_length
    return {"sessions": len(runtime._session_mgr.list_sessions()),
            "caches": {name: {"entries": n, "bytes": b} for name, (n, b) in sorted(caches.items())}}


def common_types(top: int = 15) -> dict:
    """Return the counts of the most common types among the objects the garbage collector tracks, and of the most
    common functions and bound methods by name (what a growing count of functions is made of)."""
    # A tuple that tuple() is still growing in another thread must not gain a reference here: CPython then fails that
    # tuple() with "SystemError: bad argument to internal function" (one soak hit it with every generation listed,
    # a 2-hour one with the oldest only, after a full collection had moved such a tuple there). So no other thread
    # runs while the list holds its references: a long switch interval, and a pause first so that threads already
    # waiting for the interpreter start their wait anew with it.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        time.sleep(0.01)
        objects = gc.get_objects(generation=2)
        counts = collections.Counter(type(o).__name__ for o in objects)
        functions = collections.Counter(f"{getattr(o, '__module__', '?')}.{getattr(o, '__qualname__', '?')}"
                                        for o in objects if type(o).__name__ in ("function", "method"))
        del objects
    finally:
        sys.setswitchinterval(previous)
    return {"types": dict(counts.most_common(top)), "functions": dict(functions.most_common(top))}


def sample(n: int, start: float) -> dict:
    """Return one line of the record."""
    line = {"t": round(time.time() - start, 1), "rss": rss_bytes(), "py_blocks": sys.getallocatedblocks(),
            "malloc": malloc_bytes(), "threads": threading.active_count(),
            "gc": {"collections": [g["collections"] for g in gc.get_stats()], "frozen": gc.get_freeze_count()}}
    try:
        line.update(streamlit_memory())
    except Exception as e:  # the probe must never take the server down
        line["streamlit_error"] = repr(e)
    if n % 4 == 0:
        line.update(common_types())
    return line


def probe(path: str, every: float) -> None:
    """Append a sample to path every `every` seconds, for as long as the server runs (the first once it started)."""
    start = time.time()
    for n in range(sys.maxsize):
        time.sleep(every)
        with open(path, "a") as f:
            f.write(json.dumps(sample(n, start)) + "\n")


from streamlit.web.cli import main  # noqa: E402  (imported before the probe's thread starts reading it)

threading.Thread(target=probe, args=(os.environ["AECORE_MEMPROBE"], float(os.environ.get("AECORE_MEMPROBE_SECONDS", 30))),
                 daemon=True, name="memprobe").start()

sys.argv = ["streamlit", *sys.argv[1:]]
sys.exit(main())
