"""A small client of Streamlit 1.67's websocket protocol: a browser session without a browser.

It speaks to ws://HOST/_stcore/stream as the frontend does (subprotocol "streamlit"; BackMsg.rerun_script with a
ClientState holding the page, the query string and every widget's value; ForwardMsg deltas back), keeps the widgets
it is sent, and times each interaction from the BackMsg sent to the run's script_finished. It also runs the
fragments' auto reruns (`st.fragment(run_every=...)`) and fetches the images a page shows, as the frontend does.

    async with Session("http://localhost:8501", "denoise") as s:    # opens the page: s.last is that first run
        await s.set("Noise level", 0.5)                              # an Interaction: seconds, errors, ...
        await s.click("Start training")
        s.problems                                                   # exceptions, st.error texts, disconnects

Not simulated: file uploads, plotly selections, components (the drawing canvas), websocket reconnection.
"""
from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass, field

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

FINAL = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
         ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
VISUAL = {"imgs", "html", "plotly_chart"}  # what "the first picture" means in an interaction's timing (the Denoise
# page's pictures are inside an st.html)
WIDGETS = {"slider", "selectbox", "radio", "number_input", "button", "button_group", "checkbox", "download_button",
           "file_uploader", "plotly_chart", "text_input", "text_area", "multiselect", "toggle"}


class ProtocolError(RuntimeError):
    """The session is closed, or a widget asked for is not on the page."""


@dataclass
class Problem:
    """Something a person would see go wrong: kind is exception, error (an st.error), disconnect or timeout."""

    page: str
    kind: str
    text: str


@dataclass
class Widget:
    """A widget as the page last drew it; `value` is what it shows (None for buttons and unknown kinds)."""

    id: str
    label: str
    kind: str  # slider, select_slider, selectbox, radio, number_input, button, segmented_control, checkbox, ...
    value: object
    options: list[str]
    fragment_id: str
    element: Element = field(repr=False)


@dataclass
class Interaction:
    """One user action and the script run(s) it caused."""

    kind: str
    page: str
    seconds: float | None  # send -> script_finished; None when it never finished
    first_visual: float | None = None  # send -> first delta carrying an image or a Plotly figure
    status: str = "ok"  # ok, timeout, disconnected
    errors: list[str] = field(default_factory=list)  # st.error texts drawn by the run(s)
    exceptions: list[str] = field(default_factory=list)  # exception elements and compile errors
    warnings: list[str] = field(default_factory=list)  # st.warning texts (reported, not errors)


@dataclass
class _Run:
    run_id: str
    fragment_ids: tuple[str, ...]
    started: float
    status: int | None = None


def _state_from_element(el: Element, kind: str) -> WidgetState | None:
    """Return the WidgetState the frontend would send for a newly drawn widget (its set value, else its default)."""
    w = getattr(el, el.WhichOneof("type"))
    s = WidgetState(id=w.id)
    if kind == "slider":
        s.double_array_value.data[:] = list(w.value if w.set_value else w.default)
    elif kind == "select_slider":
        s.string_array_value.data[:] = list(w.raw_value) if w.set_value else [w.options[int(i)] for i in w.default]
    elif kind in ("selectbox", "radio"):
        if w.set_value and w.HasField("raw_value"):
            s.string_value = w.raw_value
        elif w.HasField("default") and 0 <= w.default < len(w.options):
            s.string_value = w.options[w.default]
        else:
            return None
    elif kind == "number_input":
        value = w.value if w.set_value and w.HasField("value") else w.default if w.HasField("default") else None
        if value is None:
            return None
        if w.data_type == NumberInput.INT:
            s.int_value = int(value)
        else:
            s.double_value = float(value)
    elif kind == "segmented_control":
        s.string_array_value.data[:] = list(w.raw_values) if w.set_value else [w.options[i].content for i in w.default]
    elif kind == "checkbox":
        s.bool_value = w.value if w.set_value else w.default
    else:
        return None
    return s


def _kind(el: Element) -> str | None:
    """Return the widget kind of an element, or None when it is not a widget."""
    t = el.WhichOneof("type")
    if t not in WIDGETS or not getattr(el, t).id:
        return None
    if t == "slider":
        return "select_slider" if el.slider.type == Slider.SELECT_SLIDER else "slider"
    return "segmented_control" if t == "button_group" else t


def _value(state: WidgetState | None):
    """Return a WidgetState's value as plain Python."""
    if state is None:
        return None
    which = state.WhichOneof("value")
    v = getattr(state, which) if which else None
    return list(v.data) if hasattr(v, "data") else v


class Session:
    """One browser session over the websocket protocol (see the module's docstring)."""

    def __init__(self, base_url: str, page: str = "", query: str = "", timeout: float = 120.0,
                 fetch_media: bool = True, name: str = "ws"):
        self.base = base_url.rstrip("/")
        self.ws_url = "ws" + self.base[4:] + "/_stcore/stream"
        self.first_page, self.query, self.timeout, self.fetch_media, self.name = page, query, timeout, fetch_media, name
        self.elements: dict[tuple, tuple[Element, str, str]] = {}  # delta path -> (element, script hash, fragment)
        self.states: dict[str, WidgetState] = {}  # the value the "frontend" holds for each widget
        self.pages: dict[str, str] = {}  # url path name -> page script hash
        self.page_hash = self.main_hash = ""
        self.runs: list[_Run] = []
        self.problems: list[Problem] = []  # every problem seen, in order
        self.warnings: set[str] = set()  # every st.warning text seen
        self.media_bytes = self.media_files = 0
        self.media_failures: list[str] = []
        self.last: Interaction | None = None
        self._ws = self._reader = None
        self._changed = asyncio.Event()
        self._auto: dict[str, asyncio.Task] = {}
        self._media_tasks: set[asyncio.Task] = set()
        self._watch: Interaction | None = None
        self._watch_t0 = 0.0
        self._closing = False
        self.closed = False

    # ------------------------------------------------------------ connection

    async def __aenter__(self) -> "Session":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self) -> Interaction:
        """Connect and run the first page as a browser's first load does; return that interaction."""
        # no keepalive pings: a browser sends none, so a server too busy to answer one must not end the session
        self._ws = await connect(self.ws_url, subprotocols=["streamlit"], origin=self.base, max_size=None,
                                 open_timeout=self.timeout, proxy=None, ping_interval=None)
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")
        return await self._interact("open", page_name=self.first_page)

    async def close(self) -> None:
        """Close the websocket (the server then ends the session); a close here is not an error."""
        self._closing = True
        self._stop_auto()
        if self.running and not self.closed:  # leave as a person does: not in the middle of a run
            await self.wait_for(lambda s: not s.running, 10)
        for task in list(self._media_tasks):
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
        self.closed = True

    # ------------------------------------------------------------ what the page shows

    @property
    def running(self) -> bool:
        """Return True while a script run has started and not finished (one that ended early for a rerun, e.g. by
        st.rerun(), counts as running: the page it drew is half done and the next run is coming)."""
        return bool(self.runs) and self.runs[-1].status in (None, ForwardMsg.FINISHED_EARLY_FOR_RERUN)

    @property
    def page(self) -> str:
        """Return the url path name of the page shown ("" for the default page)."""
        return next((name for name, h in self.pages.items() if h == self.page_hash), self.first_page)

    def widgets(self) -> list[Widget]:
        """Return the widgets on the page, in the order they were drawn."""
        found = []
        for el, _, fragment in self.elements.values():
            kind = _kind(el)
            if kind is None:
                continue
            w = getattr(el, el.WhichOneof("type"))
            options = [o.content for o in w.options] if kind == "segmented_control" else list(getattr(w, "options", []))
            found.append(Widget(w.id, getattr(w, "label", ""), kind, _value(self.states.get(w.id)), options,
                                fragment, el))
        return found

    def widget(self, label: str, prefix: bool = False) -> Widget:
        """Return the widget with this label (or whose label starts with it); raise ProtocolError when absent."""
        for w in self.widgets():
            if w.label == label or (prefix and w.label.startswith(label)):
                return w
        raise ProtocolError(f"no widget {label!r} on page {self.page!r}; widgets: {[w.label for w in self.widgets()]}")

    def texts(self, kind: str | None = None) -> list[str]:
        """Return the text of the markdown, heading, alert and caption elements (or those of one element type)."""
        out = []
        for el, _, _ in self.elements.values():
            t = el.WhichOneof("type")
            if kind is not None and t != kind:
                continue
            if t in ("markdown", "heading", "alert", "text"):
                out.append(getattr(el, t).body)
            elif t == "progress":
                out.append(el.progress.text)
        return out

    def shows(self, text: str) -> bool:
        """Return True when some text element of the page contains `text`."""
        return any(text in t for t in self.texts())

    # ------------------------------------------------------------ actions

    async def rerun(self, kind: str = "rerun", fragment_id: str = "") -> Interaction:
        """Rerun the page with the current widget values (the frontend's 'R')."""
        return await self._interact(kind, fragment_id=fragment_id)

    async def set(self, label: str, value, prefix: bool = False, kind: str = "") -> Interaction:
        """Give a widget a new value, as a person would, and return the rerun it causes."""
        w = self.widget(label, prefix)
        s = WidgetState(id=w.id)
        if w.kind == "slider":
            s.double_array_value.data[:] = list(value) if isinstance(value, (list, tuple)) else [float(value)]
        elif w.kind == "select_slider":
            s.string_array_value.data[:] = list(value) if isinstance(value, (list, tuple)) else [str(value)]
        elif w.kind in ("selectbox", "radio"):
            if str(value) not in w.options:
                raise ProtocolError(f"{label!r} has no option {value!r}: {w.options}")
            s.string_value = str(value)
        elif w.kind == "number_input":
            if w.element.number_input.data_type == NumberInput.INT:
                s.int_value = int(value)
            else:
                s.double_value = float(value)
        elif w.kind == "segmented_control":
            s.string_array_value.data[:] = [str(value)]
        elif w.kind == "checkbox":
            s.bool_value = bool(value)
        else:
            raise ProtocolError(f"{label!r} is a {w.kind}: setting it is not supported")
        self.states[w.id] = s
        return await self._interact(kind or f"set {w.kind}", fragment_id=w.fragment_id)

    async def click(self, label: str, kind: str = "") -> Interaction:
        """Click a button (a trigger value sent once) and return the rerun it causes."""
        w = self.widget(label)
        if w.kind != "button":
            raise ProtocolError(f"{label!r} is a {w.kind}, not a button")
        if w.element.button.disabled:
            raise ProtocolError(f"the button {label!r} is disabled")
        return await self._interact(kind or "click", fragment_id=w.fragment_id,
                                    triggers=[WidgetState(id=w.id, trigger_value=True)])

    async def goto(self, page: str, kind: str = "") -> Interaction:
        """Go to another page by its url path name, as a click on its sidebar link does."""
        if page not in self.pages:
            raise ProtocolError(f"no page {page!r}; pages: {sorted(self.pages)}")
        self._stop_auto()
        self.query = ""  # the frontend keeps only the query parameters bound to widgets on a page change
        main_widgets = {getattr(el, el.WhichOneof("type")).id for el, script, _ in self.elements.values()
                        if script == self.main_hash and _kind(el)}
        return await self._interact(kind or f"open {page or 'home'}", page_hash=self.pages[page],
                                    only=main_widgets)

    async def wait_for(self, predicate, timeout: float | None = None) -> bool:
        """Wait until predicate(self) holds after some message (e.g. a fragment's auto rerun); return whether it did."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not predicate(self):
            if self.closed or self._ws is None:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return predicate(self)
        return True

    # ------------------------------------------------------------ the protocol

    def _client_state(self, fragment_id: str = "", page_hash: str | None = None, page_name: str = "",
                      triggers=(), only: set | None = None, auto: bool = False) -> ClientState:
        cs = ClientState(query_string=self.query, page_script_hash=self.page_hash if page_hash is None else page_hash,
                         page_name=page_name, fragment_id=fragment_id, is_auto_rerun=auto)
        states = [s for wid, s in self.states.items() if only is None or wid in only]
        cs.widget_states.widgets.extend(states + list(triggers))
        info = cs.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url = f"{self.base}/{page_name}" + (f"?{self.query}" if self.query else "")
        info.color_scheme = "light"
        return cs

    async def _send(self, cs: ClientState) -> None:
        msg = BackMsg()
        msg.rerun_script.CopyFrom(cs)
        await self._ws.send(msg.SerializeToString())

    async def _interact(self, kind: str, fragment_id: str = "", page_hash: str | None = None, page_name: str = "",
                        triggers=(), only: set | None = None) -> Interaction:
        if self.closed or self._ws is None:
            raise ProtocolError(f"{self.name}: the session is closed")
        result = Interaction(kind, self.page, None)
        t0 = time.monotonic()
        self._watch, self._watch_t0 = result, t0
        try:
            await self._send(self._client_state(fragment_id, page_hash, page_name, triggers, only))
        except ConnectionClosed:
            result.status = "disconnected"
            return result

        def done(_):
            if self.closed:
                return True
            return any(r.started >= t0 and r.status in FINAL and (not r.fragment_ids or fragment_id in r.fragment_ids)
                       for r in self.runs)

        finished = await self.wait_for(done, self.timeout)
        self._watch = None
        if self.closed and not self._closing:
            result.status = "disconnected"
        elif not finished:
            result.status = "timeout"
            self.problems.append(Problem(self.page or "home", "timeout",
                                         f"{kind} did not finish in {self.timeout:.0f} s"))
        else:
            result.seconds = time.monotonic() - t0
        result.page = self.page
        self.last = result
        return result

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self._handle(msg)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            if not self._closing:
                ws = self._ws
                self.problems.append(Problem(self.page or "home", "disconnect", "the connection was lost (close code "
                                             f"{ws.close_code}, reason {ws.close_reason!r})"))
            self.closed = True
            self._stop_auto()
            self._changed.set()

    def _handle(self, msg: ForwardMsg) -> None:
        t = msg.WhichOneof("type")
        now = time.monotonic()
        if t == "new_session":
            run = msg.metadata.run
            self.runs.append(_Run(run.script_run_id, tuple(run.fragment_ids), now))
            del self.runs[:-50]
            self.page_hash = msg.new_session.page_script_hash
            self.main_hash = msg.new_session.main_script_hash
            if not run.fragment_ids:  # a full run draws the page anew
                self.elements = {}
                self._stop_auto()
        elif t == "script_finished":
            for r in self.runs:
                if r.run_id == msg.metadata.run.script_run_id and r.status is None:
                    r.status = msg.script_finished
            if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                shown = {getattr(el, el.WhichOneof("type")).id for el, _, _ in self.elements.values() if _kind(el)}
                self.states = {k: v for k, v in self.states.items() if k in shown}  # like removeInactive
        elif t == "delta":
            self._delta(msg, now)
        elif t == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif t == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif t == "auto_rerun":
            fid = msg.auto_rerun.fragment_id
            if fid and fid not in self._auto:
                self._auto[fid] = asyncio.create_task(self._auto_rerun(fid, msg.auto_rerun.interval))
        elif t == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                task = self._auto.pop(fid, None)
                if task:
                    task.cancel()
        elif t == "session_event" and msg.session_event.HasField("script_compilation_exception"):
            e = msg.session_event.script_compilation_exception
            self._problem("exception", f"compile error {e.type}: {e.message}")
        elif t == "page_not_found":
            self._problem("error", f"page not found: {msg.page_not_found.page_name}")

    def _delta(self, msg: ForwardMsg, now: float) -> None:
        d = msg.delta
        if d.WhichOneof("type") != "new_element":
            return
        el = d.new_element
        self.elements[tuple(msg.metadata.delta_path)] = (el, msg.metadata.active_script_hash, d.fragment_id)
        t = el.WhichOneof("type")
        kind = _kind(el)
        if kind:
            w = getattr(el, t)
            if w.id not in self.states or getattr(w, "set_value", False):
                state = _state_from_element(el, kind)
                if state is not None:
                    self.states[w.id] = state
        if t in VISUAL and self._watch is not None and self._watch.first_visual is None:
            self._watch.first_visual = now - self._watch_t0
        if t == "exception":
            self._problem("exception", f"{el.exception.type}: {el.exception.message}")
        elif t == "alert" and el.alert.format == Alert.ERROR:
            self._problem("error", el.alert.body)
        elif t == "alert" and el.alert.format == Alert.WARNING:
            self.warnings.add(el.alert.body)
            if self._watch is not None:
                self._watch.warnings.append(el.alert.body)
        elif t == "imgs" and self.fetch_media:
            for img in el.imgs.imgs:
                if img.url.startswith("/"):
                    task = asyncio.create_task(self._fetch(img.url))
                    self._media_tasks.add(task)
                    task.add_done_callback(self._media_tasks.discard)

    def _problem(self, kind: str, text: str) -> None:
        if self._watch is not None:
            (self._watch.exceptions if kind == "exception" else self._watch.errors).append(text)
        self.problems.append(Problem(self.page or "home", kind, text))

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        try:
            while not self.closed:
                await asyncio.sleep(interval)
                await self._send(self._client_state(fragment_id, auto=True))
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    def _stop_auto(self) -> None:
        for task in self._auto.values():
            task.cancel()
        self._auto.clear()

    async def _fetch(self, path: str) -> None:
        """GET a media file as the browser's <img> does (HTTP/1.1, one connection each); count failures."""
        parts = urllib.parse.urlsplit(self.base)
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(-1), self.timeout)
            writer.close()
        except (OSError, asyncio.TimeoutError) as e:
            self.media_failures.append(f"{path}: {e}")
            return
        status = data.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 200 " not in status:
            self.media_failures.append(f"{path}: {status}")
            return
        self.media_files += 1
        self.media_bytes += len(data)
