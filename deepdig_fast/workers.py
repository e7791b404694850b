"""Persistent worker processes, one torch thread each, that run the caller's function calls.

:class:`WorkerPool` (the caller's side) starts ``workers`` processes and hands them calls: a
function (pickled by reference, so it must be importable: a module-level function) and its
arguments. Each worker runs one call at a time with one torch thread and stays for the next. The
autoencoder trainings of the "processes" joint-training mode run this way
(adversarial.joint.TrainingPool): small training steps scale badly over threads, so on a CPU two
single-thread trainings side by side finish sooner than two two-thread trainings one after the
other (benchmarks/RESULTS.md).

This module imports neither torch nor the rest of the package, so a caller can start its workers
first and import torch while they do (their start-up: importing torch and ``torch._dynamo``, which
torch's optimisers import on first use, is paid once per pool, not once per call).

The protocol is frames on the worker's stdin / stdout: an 8-byte little-endian length, then a
pickle. A call frame holds ``(user files, pickled (function, args))``: the worker first imports
each ``(module name, path)`` of the user's ``file.py:attr`` specs (userfiles.import_user_file) so
that the classes defined there unpickle; the reply holds ``("ok", value)`` or ``("error",
exception, traceback text)``. End of input ends the worker. The worker writes nothing else to
that stdout: its own file descriptor 1 is pointed at stderr, so stray prints (from Python or C
code) cannot corrupt a frame. Started with ``python -c`` (not through multiprocessing's spawn,
which would re-run the caller's main script in the worker when it lacks an ``if __name__ ==
"__main__"`` guard).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from deepdig_fast.validation import check_int

_LENGTH = struct.Struct("<Q")
_PARENT = "DEEPDIG_TRAIN_WORKER_PARENT"  # the caller's pid, in the worker's environment


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """One frame's payload; None at end of input (also when the stream ends inside a frame)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (n,) = _LENGTH.unpack(head)
    body = stream.read(n)
    return body if len(body) == n else None


# --------------------------------------------------------------------------------------------------
# the caller's side
# --------------------------------------------------------------------------------------------------
class _Worker:
    """One worker process and its two pipes."""

    def __init__(self) -> None:
        import subprocess

        # the worker imports deepdig_fast as this process does; one OpenMP thread
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "OMP_NUM_THREADS": "1",
            _PARENT: str(os.getpid()),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from deepdig_fast.workers import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def run(self, payload: bytes) -> bytes:
        """Send one job, wait for its reply frame (the pickled ("ok", ...) / ("error", ...) tuple)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _write_frame(self.proc.stdin, payload)
        except (BrokenPipeError, ValueError):
            pass  # it died: the read below says so
        raw = _read_frame(self.proc.stdout)
        if raw is None:
            status = self.proc.wait()
            raise RuntimeError(f"a worker process exited before replying (exit status {status}; see its stderr)")
        return raw

    def close(self) -> None:
        """End the process now: killed when still running (a worker holds nothing to save between
        jobs; one killed inside a job fails that job)."""
        if self.proc.poll() is None:
            self.proc.kill()
        for s in (self.proc.stdin, self.proc.stdout):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.proc.wait()


class WorkerJob:
    """One call submitted to a :class:`WorkerPool`. ``result()`` gives the function's return value
    (unpickled in the calling thread), or raises its exception (a RuntimeError with the worker's
    traceback when the exception does not pickle); ``done()`` says whether the worker has replied;
    ``future`` is the underlying Future of the reply frame."""

    def __init__(self, future: Future) -> None:
        self.future = future
        self._value: tuple | None = None

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> Any:
        if self._value is None:
            reply = pickle.loads(self.future.result(timeout))
            if reply[0] == "error":
                _, exc, text = reply
                if isinstance(exc, BaseException):
                    raise exc
                raise RuntimeError(f"a call failed in its worker process:\n{text}")
            self._value = (reply[1],)
        return self._value[0]


class WorkerPool:
    """``workers`` persistent single-thread processes (started at once, in the background).

    ``submit(fn, args, files)`` returns a :class:`WorkerJob` whose ``result()`` is ``fn(*args)``
    run in a worker with one torch thread; calls wait in order for a free worker. ``fn`` and
    ``args`` must pickle (``fn`` by reference: a module-level function); ``files`` lists the
    ``(module name, path)`` of user files (userfiles.user_files) the worker imports before it
    unpickles them. A worker that dies fails its call and is replaced for the next one. Use as a
    context manager or call :meth:`close`: the workers end then (killed when the block ends with
    an exception, so nothing outlives a failed run).
    """

    def __init__(self, workers: int = 2) -> None:
        check_int(workers, "workers", low=1)
        self.workers = workers
        self._all: list[_Worker] = []  # every live worker, busy or idle
        self._idle: list[_Worker] = []
        self._lock = threading.Condition()
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepdig-worker")
        try:
            for _ in range(workers):
                self._start_worker()
        except BaseException:
            self.close(kill=True)
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    def _start_worker(self) -> None:
        w = _Worker()
        with self._lock:
            self._all.append(w)
            self._idle.append(w)
            self._lock.notify()

    def submit(self, fn: Any, args: tuple, files: Any = ()) -> WorkerJob:
        if self._closed:
            raise RuntimeError("this WorkerPool is closed")
        # the caller's objects as they are now; the worker imports the user files first
        inner = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        payload = pickle.dumps((list(files), inner), protocol=pickle.HIGHEST_PROTOCOL)
        return WorkerJob(self._executor.submit(self._exchange, payload))

    def _exchange(self, payload: bytes) -> bytes:
        # Bytes only on these threads, never a torch op: a thread that runs one gets an OpenMP team
        # of its own, and with more OpenMP threads in the process than cores libgomp stops spinning
        # at its barriers -- the caller's small parallel regions then ran twice as slow.
        with self._lock:
            while not self._idle:
                self._lock.wait()
            worker = self._idle.pop()
        try:
            reply = worker.run(payload)
        except BaseException:
            worker.close()
            with self._lock:
                self._all.remove(worker)
            if not self._closed:
                self._start_worker()  # the next job gets a fresh one
            raise
        with self._lock:
            self._idle.append(worker)
            self._lock.notify()
        return reply

    def close(self, kill: bool = False) -> None:
        """End the workers: after the jobs submitted so far finish, or at once with ``kill`` (jobs
        not finished then fail). Idempotent."""
        if self._closed and not self._all:
            return
        self._closed = True
        if kill:
            with self._lock:
                workers = list(self._all)
            for w in workers:  # their pending reads end, so the executor's threads finish
                w.close()
        self._executor.shutdown(wait=True, cancel_futures=kill)
        with self._lock:
            workers, self._all, self._idle = self._all, [], []
        for w in workers:
            w.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(kill=exc_type is not None)


# --------------------------------------------------------------------------------------------------
# the worker's side
# --------------------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """On Linux, SIGKILL this worker when the process that started it dies (however it dies: a
    killed run must not leave trainings running); elsewhere the worker ends at its next read."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        return
    if str(os.getppid()) != os.environ.get(_PARENT, str(os.getppid())):
        os._exit(1)  # the parent died before the signal was armed


def main() -> None:
    import traceback

    _die_with_parent()

    # the protocol's stdout is a private copy of fd 1; fd 1 itself now writes to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer

    import torch

    from deepdig_fast.userfiles import import_user_file  # here, not at the top: the caller side stays light

    torch.set_num_threads(1)
    # torch's optimisers import torch._dynamo on first use (about 1 s): paid now, before a job waits
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    while True:
        raw = _read_frame(inp)
        if raw is None:
            break
        try:
            files, inner = pickle.loads(raw)
            for name, file in files:
                import_user_file(file, name)
            fn, args = pickle.loads(inner)
            reply: tuple = ("ok", fn(*args))
            payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            text = traceback.format_exc()
            try:
                payload = pickle.dumps(("error", e, text), protocol=pickle.HIGHEST_PROTOCOL)
                pickle.loads(payload)  # an exception that pickles but does not unpickle goes as text
            except Exception:
                payload = pickle.dumps(("error", None, text), protocol=pickle.HIGHEST_PROTOCOL)
        _write_frame(out, payload)
    out.close()
    # nothing left to flush: skip torch's teardown (0.7 s per worker)
    os._exit(0)
