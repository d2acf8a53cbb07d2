"""`python tests/audited_streamlit.py run app.py ...`: Streamlit's command line, with an audit hook (PEP 578) that
appends each file the server opens for writing, renames or removes to the file named by AECORE_AUDIT_LOG.
(`python tests/audited_streamlit.py --selftest PATH` instead writes PATH, so a test can see the hook record it.)"""
import os
import sys

_LOG = os.open(os.environ["AECORE_AUDIT_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_CHANGES = {"os.rename": "rename", "os.replace": "rename", "os.remove": "remove", "os.unlink": "remove",
            "os.mkdir": "mkdir", "tempfile.mkstemp": "mkstemp", "tempfile.mkdtemp": "mkdtemp"}


def _record(kind: str, path) -> None:
    os.write(_LOG, f"{kind}\t{os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else path}\n".encode())


def _hook(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):  # an already open descriptor
            return
        if (mode and any(c in mode for c in "wax+")) or (mode is None and flags & _WRITES):
            _record("write", path)
    elif event in _CHANGES:
        _record(_CHANGES[event], args[0])


sys.addaudithook(_hook)

if sys.argv[1:2] == ["--selftest"]:
    with open(sys.argv[2], "w") as f:
        f.write("written under the audit hook")
    sys.exit(0)

from streamlit.web.cli import main  # noqa: E402  (after the hook, so that nothing escapes it)

sys.argv = ["streamlit", *sys.argv[1:]]
sys.exit(main())
