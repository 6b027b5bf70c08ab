"""Waiting for what another process does (an ml-commons task, a model state, a server starting) without
waiting longer than it takes."""

from __future__ import annotations

import time


class Backoff:
    """Sleeps that start short and double up to a ceiling. Most of these waits end within a tenth of a
    second (a remote model's register and deploy tasks); a few take seconds (a server loading a model). A
    fixed half-second poll made every short wait cost half a second: about 20 s per line of the test suite."""

    def __init__(self, first_s: float = 0.05, longest_s: float = 0.5) -> None:
        self.next_s, self.longest_s = first_s, longest_s

    def sleep(self) -> None:
        time.sleep(self.next_s)
        self.next_s = min(self.next_s * 2, self.longest_s)
