"""Ctrl-C and SIGTERM end a search honestly: Tune stops gracefully (its state saved), the runs of the
trials that were cut off end KILLED, and the command exits 130 (SIGINT) or 143 (SIGTERM) with the exact
``mscm tune --resume`` command, never a success and "promote it with".

Tune's own SIGINT handler ends ``fit()`` quietly, and it has none for SIGTERM (the default kills the
driver on the spot). :func:`catching_stops` takes both signals for the duration of ``fit()`` and turns
them into Tune's graceful stop (SIGUSR1, which Tune always handles); a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report


@dataclass
class Stops:
    received: list[int] = field(default_factory=list)

    @property
    def signal(self) -> int | None:
        return self.received[0] if self.received else None


@contextlib.contextmanager
def catching_stops() -> Iterator[Stops]:
    """SIGINT and SIGTERM, while the block runs, ask Tune to stop gracefully; a second one raises
    KeyboardInterrupt. Tune's own SIGINT handler is switched off for the block (it would swallow the
    fact that the search was interrupted)."""
    from ..environ import temporary_env

    stops = Stops()

    def handler(signum, frame):
        stops.received.append(signum)
        if len(stops.received) > 1:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop: save the state, end the loop

    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    try:
        with temporary_env("TUNE_DISABLE_SIGINT_HANDLER", "1"):
            yield stops
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
