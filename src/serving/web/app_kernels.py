"""The Voila app's kernels: at most `max_kernels` alive, pre-heated ones included; past that a visitor
gets a "busy, try again" page (HTTP 503, drawn by the app's Voila template) instead of one more
process holding the model. Named in voila.json as Voila's `multi_kernel_manager_class`; Voila wraps it
in its pre-heating manager (a pool of kernels that have already run app.ipynb, so a visitor's page is
ready at once) and jupyter_server's culler shuts down kernels whose page is gone (voila.json's cull
settings).

What this class adds to those two:
- the cap, counted over running kernels and those still starting (two visitors in the same second
  must not both pass it);
- a pool refilled when culling frees a place: Voila refills its pool only when a visitor takes a
  kernel, so a refill refused at the cap would leave the pool empty (and every later visitor waiting
  3-4 s for a cold kernel) for good;
- a kernel handed out of the pool counts as active from that moment: it may have waited in the pool
  longer than the cull timeout, and the culler must not take it in the second before the visitor's
  page connects to it.

Imported by the Voila server process only: it must stay light (no torch, no model).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Callable

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Int

__all__ = ["BoundedKernelManager", "AppBusy", "BUSY_REASON"]

log = logging.getLogger(__name__)

BUSY_REASON = "Too many visitors right now"


class AppBusy(web.HTTPError):
    """No kernel may start: the page says so (status 503) instead of a traceback."""

    def __init__(self, live: int, cap: int):
        super().__init__(503, f"{live} kernels of {cap} are in use", reason=BUSY_REASON)


def _stamp_handed_out(get_rendered_notebook: Callable) -> Callable:
    """Wraps Voila's get_rendered_notebook: the kernel it hands out becomes active now."""

    @functools.wraps(get_rendered_notebook)
    async def wrapper(self: "BoundedKernelManager", *args: Any, **kwargs: Any):
        render_task, rendered_cache, kernel_id = await get_rendered_notebook(self, *args, **kwargs)
        if kernel_id in self:
            self.get_kernel(kernel_id).last_activity = utcnow()
        return render_task, rendered_cache, kernel_id

    return wrapper


class BoundedKernelManager(AsyncMappingKernelManager):
    """jupyter_server's kernel manager with a cap on live kernels (see the module's docstring)."""

    max_kernels = Int(
        8,
        config=True,
        help="Most kernels alive at once, pre-heated ones included (each holds the model: about 100 MB PSS, "
        "190 MB RSS; docs/serving.md). "
        "Past it a visitor gets a 'busy, try again' page. 0 or less: no cap.",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Voila builds its pre-heating manager as a subclass of this class; its hand-out method is
        # wrapped here because a subclass's method would otherwise hide any override of ours.
        super().__init_subclass__(**kwargs)
        if "get_rendered_notebook" in cls.__dict__:
            cls.get_rendered_notebook = _stamp_handed_out(cls.__dict__["get_rendered_notebook"])

    def __init__(self, **kwargs: Any):
        self._starting = 0  # set before the parent's __init__: Voila's starts its pool from there
        self._closing = False
        super().__init__(**kwargs)

    def live_kernel_count(self) -> int:
        """Kernels running plus those still starting."""
        return len(self.list_kernel_ids()) + self._starting

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        live = self.live_kernel_count()
        if 0 < self.max_kernels <= live:
            log.warning("not starting a kernel: %d of %d in use", live, self.max_kernels)
            raise AppBusy(live, self.max_kernels)
        self._starting += 1
        try:
            return await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= 1

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        await super().shutdown_kernel(kernel_id, *args, **kwargs)
        if not self._closing:
            self._refill_pool()

    async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:
        self._closing = True  # the server is stopping: no refill
        await super().shutdown_all(*args, **kwargs)

    def _refill_pool(self) -> None:
        """Drop pool entries whose start was refused at the cap and start their replacements (only
        under Voila's pre-heating manager, which has `_pools` and `fill_if_needed`)."""
        pools: dict[str, list[asyncio.Task]] = getattr(self, "_pools", {})
        fill: Callable | None = getattr(self, "fill_if_needed", None)
        if fill is None:
            return
        for notebook, pool in list(pools.items()):
            failed = [task for task in pool if task.done() and (task.cancelled() or task.exception() is not None)]
            for task in failed:
                pool.remove(task)
            fill(delay=0, notebook_name=notebook)  # starts only what the pool lacks
