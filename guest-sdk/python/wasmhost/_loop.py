"""An asyncio event loop that works inside a wasm component.

The standard loop needs a self-pipe (a socketpair, refused in the sandbox) and threads
for executors. This one waits on ``wasi:io/poll`` with a monotonic-clock pollable for
timers, and runs ``run_in_executor`` work inline (there are no threads).
"""

import asyncio
import asyncio.events
import sys

_MAX_WAIT_NS = 24 * 3600 * 10**9


class _Waiters:
    """Pollables tasks wait on, and the futures they complete."""

    def __init__(self):
        self.pending = []  # [(pollable, future)]

    def select(self, timeout):
        """Blocks until a pollable is ready or ``timeout`` seconds pass; ``None``: no limit."""
        if self.pending:
            self.pending = [(p, f) for p, f in self.pending if not f.done() or _drop(p)]
        if timeout is not None and timeout <= 0 and not self.pending:
            return []
        from wit_world.imports import monotonic_clock, poll

        if timeout is None and not self.pending:
            raise RuntimeError(
                "the event loop has nothing to wait for: a task awaits something no other "
                "task will ever complete (threads and sockets do not exist in a wasm guest)"
            )
        pollables = [p for p, _ in self.pending]
        clock = None
        if timeout is not None:
            clock = monotonic_clock.subscribe_duration(min(int(max(timeout, 0) * 1e9), _MAX_WAIT_NS))
            pollables.append(clock)
        ready = poll.poll(pollables)
        if clock is not None:
            _drop(clock)
        still = []
        for i, (pollable, future) in enumerate(self.pending):
            if i in ready:
                if not future.done():
                    future.set_result(None)
                _drop(pollable)
            else:
                still.append((pollable, future))
        self.pending = still
        return []

    def register(self, pollable, future):
        self.pending.append((pollable, future))


def _drop(pollable):
    pollable.__exit__(None, None, None)
    return False


class WasiEventLoop(asyncio.BaseEventLoop):
    """``BaseEventLoop`` with ``wasi:io/poll`` in place of a selector."""

    def __init__(self):
        super().__init__()
        self._selector = _Waiters()

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        # Nothing wakes the loop from another thread: there are no other threads.
        pass

    def wait_for_pollable(self, pollable):
        """A future that completes when the ``wasi:io/poll`` pollable is ready."""
        future = self.create_future()
        self._selector.register(pollable, future)
        return future

    def _run_once(self):
        # A request's tasks hand control to each other many times (Starlette's middleware
        # alone some ten times); with only callbacks ready (no timer, nothing to poll), the
        # base loop's select, clock reads and debug checks are pure overhead, paid in
        # interpreted Python at every step.
        ready = self._ready
        if ready and not self._scheduled and not self._selector.pending:
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
            return
        super()._run_once()

    def run_in_executor(self, executor, func, *args):
        future = self.create_future()
        try:
            future.set_result(func(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting task
            future.set_exception(err)
        return future

    def set_default_executor(self, executor):
        pass

    async def shutdown_default_executor(self, timeout=None):
        pass

    def add_reader(self, fd, callback, *args):
        raise NotImplementedError("file-descriptor readers do not exist in a wasm guest")

    add_writer = add_reader


_loop = None


def loop():
    """The instance's one event loop, made current."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = WasiEventLoop()
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(_loop)
    return _loop


def run(awaitable):
    """Runs ``awaitable`` to completion on the instance's loop and returns its result.

    ``run_until_complete`` without its per-call set-up: the loop is made current once per
    call here and runs until the task is done (a guest serves each request to the end)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = WasiEventLoop()
        asyncio.set_event_loop(_loop)
    current = _loop
    task = current.create_task(awaitable if asyncio.iscoroutine(awaitable) else _wrap(awaitable))
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(
        firstiter=current._asyncgen_firstiter_hook, finalizer=current._asyncgen_finalizer_hook
    )
    asyncio.events._set_running_loop(current)
    try:
        while not task.done():
            current._run_once()
    finally:
        asyncio.events._set_running_loop(None)
        sys.set_asyncgen_hooks(*hooks)
    return task.result()


async def _wrap(awaitable):
    return await awaitable


def install():
    """Makes ``asyncio.new_event_loop`` (and so ``asyncio.run``) use this loop."""

    def new_event_loop():
        return WasiEventLoop()

    asyncio.new_event_loop = new_event_loop
    asyncio.events.new_event_loop = new_event_loop


