"""Cold start: `import aecore` in a fresh interpreter, which heavy modules it pulls in, and the home page's first render."""
from __future__ import annotations

import json

from .common import in_fresh_python, median

HEAVY = ("umap", "pynndescent", "numba", "openTSNE", "sklearn.manifold", "streamlit", "plotly")

_IMPORT = """
import json, sys, time
t0 = time.perf_counter()
import aecore
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "loaded": [m for m in %r if m in sys.modules]}))
"""

_HOME = """
import json, os, time
os.environ["AECORE_WARM_UP"] = "0"  # the page's own render, without UMAP compiling beside it
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=120).run()
print(json.dumps({"seconds": time.perf_counter() - t0, "errors": len(at.exception)}))
"""


def run(repeats: int = 5, home: bool = True, log=print) -> dict:
    """Return the median seconds of `import aecore` over fresh interpreters, the heavy modules it loaded, and the
    median seconds of the home page's first render (Streamlit's AppTest, in a fresh interpreter)."""
    runs = [json.loads(in_fresh_python(_IMPORT % (HEAVY,)).strip().splitlines()[-1]) for _ in range(repeats)]
    out = {"import_s": median(r["seconds"] for r in runs), "import_runs": [round(r["seconds"], 3) for r in runs],
           "heavy_loaded": sorted(set().union(*(r["loaded"] for r in runs)))}
    log(f"  import aecore: {out['import_s']:.2f} s, heavy modules loaded: {out['heavy_loaded'] or 'none'}")
    if home:
        pages = [json.loads(in_fresh_python(_HOME).strip().splitlines()[-1]) for _ in range(max(1, repeats // 2))]
        out["home_s"] = median(p["seconds"] for p in pages)
        out["home_errors"] = max(p["errors"] for p in pages)
        log(f"  home page first render (AppTest, fresh process): {out['home_s']:.2f} s")
    return out
