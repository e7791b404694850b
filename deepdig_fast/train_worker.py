"""Worker process of adversarial.train_in_processes: reads one pickled training job from stdin,
trains with one torch thread, writes the pickled (state_dict, TrainHistory) to stdout.

Started as `python -m deepdig_fast.train_worker` (not through multiprocessing's spawn, which would
re-run the caller's main script in the worker when it lacks an `if __name__ == "__main__"` guard).
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from deepdig_fast.adversarial import train_one_thread
    from deepdig_fast.allocator import tune_allocator

    tune_allocator()
    job = pickle.load(sys.stdin.buffer)
    out = train_one_thread(job)
    sys.stdout.buffer.write(pickle.dumps(out))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
