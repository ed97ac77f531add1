"""The app as a visitor meets it, in headless Chromium: the command that serves it (`make app`) until the
first usable page, then fresh pages while the pool of pre-heated kernels is warm (issue 39 item 3).

`python -m src bench --sections app` reports these times against their budgets; tests/test_app_serving.py
and tests/test_app.py use the same helpers to check what the pages do (a unit test on a shared CI runner
cannot hold a wall-clock budget, so they only print the times). A page is *usable* when the upload button
is shown. Needs Debian's chromium (`apt-get install -y chromium`) and Playwright's Python package.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import psutil

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
USABLE_SELECTOR = ".widget-upload"
FIRST_PAGE_BUDGET_S = 8.0  # `make app` until the first usable page (issue 39)
FRESH_PAGE_BUDGET_S = 1.5  # a visitor's page while the pool is warm (issue 39)
START_TIMEOUT_S = 90.0


class AppPagesError(RuntimeError):
    """The app could not be served or measured (what went wrong, with the end of its log)."""


def machine_busy() -> str:
    """Why timings taken now would measure other jobs rather than the app ("" when the machine is quiet
    enough: a 1-minute load average no higher than the cores)."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    return f"load average {load:.1f} on {cores} cores" if load > cores else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def is_kernel(process: psutil.Process) -> bool:
    try:
        return "ipykernel_launcher" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def kernels(root: psutil.Process) -> list[psutil.Process]:
    return [p for p in process_tree(root) if is_kernel(p)]


def memory_mb(root: psutil.Process, field_name: str = "pss") -> float:
    """The server and its kernels together: the sum of their proportional set sizes (PSS: shared
    libraries counted once across the processes, as the machine pays for them; "rss": as `top` shows
    them, shared pages counted in every process)."""
    total = 0
    for process in process_tree(root):
        try:
            total += getattr(process.memory_full_info(), field_name)
        except psutil.Error:
            pass
    return total / 2**20


def wait_warm(root: psutil.Process, count: int, timeout: float = START_TIMEOUT_S) -> float:
    """Wait until `count` kernels run and all of them are idle (the pool has run app.ipynb); the memory
    then, in MB (PSS). Raises AppPagesError when the pool does not settle within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = kernels(root)
        if len(found) == count:
            try:
                before = [p.cpu_times() for p in found]
                time.sleep(1.0)
                busy = [sum(p.cpu_times()[:2]) - sum(b[:2]) for p, b in zip(found, before)]
            except psutil.Error:
                continue
            if max(busy) < 0.05:
                return memory_mb(root)
        else:
            time.sleep(0.5)
    raise AppPagesError(f"the kernel pool did not settle at {count} idle kernels within {timeout:.0f} s (found {len(kernels(root))})")


# Run in every page before its own scripts: the moment (performance.now(), from the navigation's start)
# the upload button is first laid out with a size, seen from inside the page. Playwright's own wait
# adds its round trips to the browser, which on 2 busy cores were 0.3-0.5 s of the time it reported.
USABLE_CLOCK_SCRIPT = """
(() => {
  const seen = () => {
    const button = document.querySelector('%s');
    if (button && button.getClientRects().length && getComputedStyle(button).visibility !== 'hidden') {
      window.__landmarkUsableAt = performance.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(() => requestAnimationFrame(seen));
  observer.observe(document, {subtree: true, childList: true, attributes: true});
})();
""" % USABLE_SELECTOR


def watch_usable(context: Any) -> None:
    """Make every page of `context` note when it became usable (`open_page` reads it)."""
    context.add_init_script(USABLE_CLOCK_SCRIPT)


def open_page(context: Any, url: str) -> tuple[Any, int, float]:
    """A new tab on the app: the page, its HTTP status and the seconds until it was usable (the upload
    button shown; a busy page counts when it has loaded). The seconds are the page's own clock (from
    the navigation's start) when `watch_usable(context)` was called, else the wall clock around
    Playwright's wait."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    start = time.perf_counter()
    status = page.goto(url, wait_until="domcontentloaded").status
    if status == 200:
        page.wait_for_selector(USABLE_SELECTOR, state="visible")
    seconds = time.perf_counter() - start
    if status == 200:
        in_page = page.evaluate("window.__landmarkUsableAt")
        seconds = in_page / 1000 if in_page else seconds
    return page, status, seconds


def close_all(context: Any) -> None:
    """Close every tab as a browser does (their unload beacons shut their kernels down), then the context."""
    for page in context.pages:
        page.close(run_before_unload=True)
    context.close()


def stop(process: subprocess.Popen, seen: set[psutil.Process]) -> None:
    """Stop the server's process group (make, the shell, Voila), then any kernel in `seen` still running
    (kernels run in their own session; Voila stops them on SIGTERM, this only makes sure)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    time.sleep(1)
    for leftover in seen:
        try:
            if leftover.is_running() and is_kernel(leftover):
                leftover.kill()
        except psutil.Error:
            pass


@dataclass
class ServedApp:
    """A running app: where it answers, its process tree and how long its first usable page took."""

    url: str
    port: int
    root: psutil.Process
    log_path: Path
    browser: Any
    first_usable_s: float
    busy_at_start: str
    seen: set[psutil.Process] = field(default_factory=set)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def make_app_command(port: int) -> list[str]:
    """`make app` on `port`, as a user starts it; -o: never rebuild .venv (a fresh requirements.txt
    would send pip to the network)."""
    return ["make", "--no-print-directory", "-o", ".venv/bin/activate", "app", f"PORT={port}"]


def app_environment(folder: Path) -> dict[str, str]:
    """The environment of a served app whose state stays in `folder` (taught landmarks, Jupyter's runtime)."""
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", LANDMARK_HOME=str(folder / "home"),
                JUPYTER_DATA_DIR=str(folder / "jupyter"), JUPYTER_RUNTIME_DIR=str(folder / "runtime"))


@contextmanager
def served_app(browser: Any, folder: Path, port: Optional[int] = None) -> Iterator[ServedApp]:
    """`make app` on a free port; a browser asks for the page from the moment make starts until it is
    usable (that delay is `first_usable_s`). Always stopped, kernels included."""
    from playwright.sync_api import Error as PlaywrightError

    port = port or free_port()
    url = f"http://localhost:{port}/"
    log_path = folder / "make_app.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(make_app_command(port), cwd=ROOT, env=app_environment(folder), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    root = psutil.Process(process.pid)
    seen: set[psutil.Process] = set()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(60_000)
        while True:
            if process.poll() is not None:
                raise AppPagesError(f"make app exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.perf_counter() - started > START_TIMEOUT_S:
                raise AppPagesError(f"make app served no page within {START_TIMEOUT_S:.0f} s:\n{log_path.read_text()[-3000:]}")
            try:
                page.goto(url, wait_until="domcontentloaded")
                break
            except PlaywrightError:  # not listening yet
                time.sleep(0.1)
        page.wait_for_selector(USABLE_SELECTOR, state="visible")
        served = ServedApp(url, port, root, log_path, browser, time.perf_counter() - started, machine_busy(), seen)
        seen.update(process_tree(root))
        close_all(context)
        yield served
    finally:
        seen.update(process_tree(root))
        stop(process, seen)


def pool_size() -> int:
    """Voila's pool of pre-heated kernels, as voila.json sets it."""
    return json.loads((ROOT / "voila.json").read_text())["VoilaConfiguration"]["default_pool_size"]


def measure_app_pages(visits: int = 5, starts: int = 1, folder: Optional[Path] = None) -> dict[str, Any]:
    """The bench's app section: `starts` times `make app` until its first usable page, and each time
    `visits` pages, one visitor after another (each leaves before the next comes, and comes once the
    pool is full and idle again), in one browser: Voila's static files are in its cache after the
    first visit, as for anyone who visited before; the first visit of a start is reported alone."""
    import tempfile

    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise AppPagesError("needs Debian chromium: apt-get install -y chromium")
    first_usable, fresh, first_visit, busy = [], [], [], []
    pool = pool_size()
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for start in range(starts):
                folder_now = Path(folder or tmp) / f"start{start}"
                folder_now.mkdir(parents=True, exist_ok=True)
                with served_app(browser, folder_now) as served:
                    first_usable.append(served.first_usable_s)
                    busy.append(served.busy_at_start)
                    context = browser.new_context(viewport={"width": 1000, "height": 900})
                    watch_usable(context)
                    try:
                        for visit in range(visits):
                            wait_warm(served.root, pool)
                            busy.append(machine_busy())
                            page, status, seconds = open_page(context, served.url)
                            if status != 200:
                                raise AppPagesError(f"visit {visit}: HTTP {status}")
                            (first_visit if visit == 0 else fresh).append(seconds)
                            served.seen.update(process_tree(served.root))
                            page.close(run_before_unload=True)  # the visitor leaves: its kernel goes, the pool refills
                    finally:
                        close_all(context)
        finally:
            browser.close()
    return {
        "starts": starts, "visits_per_start": visits, "pool_size": pool,
        "first_usable_s": first_usable, "first_visit_s": first_visit, "fresh_page_s": fresh,
        "first_usable_median_s": statistics.median(first_usable),
        "fresh_page_median_s": statistics.median(fresh or first_visit),
        "fresh_page_max_s": max(fresh or first_visit),
        "budgets_s": {"first_usable": FIRST_PAGE_BUDGET_S, "fresh_page": FRESH_PAGE_BUDGET_S},
        "busy": sorted({why for why in busy if why}),
    }


def app_section(result: Optional[dict[str, Any]]) -> list[str]:
    """bench.md's lines for the app section."""
    if not result:
        return ["Not measured."]
    def seconds(values: Sequence[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)
    return [
        f"| what | median | all (s) | budget |",
        "|---|---:|---|---:|",
        f"| `make app` until the first usable page | {result['first_usable_median_s']:.2f} s | {seconds(result['first_usable_s'])} | "
        f"{result['budgets_s']['first_usable']:.1f} s |",
        f"| a visitor's page, pool warm (after the first visit) | {result['fresh_page_median_s']:.2f} s | {seconds(result['fresh_page_s'])} | "
        f"{result['budgets_s']['fresh_page']:.1f} s |",
        f"| the first visit after a start | – | {seconds(result['first_visit_s'])} | – |",
        "",
        f"Pool of {result['pool_size']} pre-heated kernels; {result['starts']} start(s) x {result['visits_per_start']} visits. "
        + (f"Machine busy during the run: {'; '.join(result['busy'])}." if result["busy"] else "The machine was quiet (load average <= cores)."),
    ]
