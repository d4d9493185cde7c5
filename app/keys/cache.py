"""The unwrapped keys one process keeps for a short time: data keys by subject and version (at
most `size`, least recently used out first), each subject's key for encrypting per cipher, and
service keys; each until its time runs out.

Everything in it was filled under one shred epoch. A transaction that reads another drops it all
(`follow`), and a key loaded by a transaction that read an older epoch is not kept (`keep`): a
destruction committed meanwhile, and the key may be one it destroyed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from app.keys.datakey import DataKey

logger = logging.getLogger("pgw.keys")


class KeyCache:
    def __init__(self, *, size: int, ttl: float, clock: Callable[[], float]):
        self.size, self.ttl, self.clock = size, ttl, clock
        self._keys: OrderedDict[tuple[str, int], DataKey] = OrderedDict()
        self._active: dict[tuple[str, str], DataKey] = {}  # (subject, cipher) -> key
        self._service: dict[str, tuple[bytes, float]] = {}  # name -> (clear key, until)
        self._lock = threading.Lock()
        self.epoch: int | None = None
        self._moved_at = 0  # when the cache took its epoch (monotonic ns)

    def follow(self, epoch: int, asked_at: int) -> None:
        """The shred epoch a transaction read in a statement sent at `asked_at` (monotonic ns):
        a cache filled under another epoch is dropped whole, so a destroyed key stops working in
        this process at once. An older epoch asked for before the cache moved on (by a
        transaction that then waited, for a destruction's lock say) changes nothing: the cache
        never goes back to keep what was destroyed. One asked for later is the database's (it
        was restored from a backup): followed, and logged."""
        with self._lock:
            if epoch == self.epoch:
                return
            if self.epoch is not None and epoch < self.epoch:
                if asked_at < self._moved_at:
                    return
                logger.warning("the shred epoch went back from %d to %d: was the database "
                               "restored? Keys destroyed since that backup are back in it",
                               self.epoch, epoch)
            self._keys.clear()
            self._active.clear()
            self._service.clear()
            self.epoch, self._moved_at = epoch, time.monotonic_ns()

    def key(self, subject_id: str, version: int) -> DataKey | None:
        key = self._keys.get((subject_id, version))  # a read: no lock needed under the GIL
        return key if key is not None and key.expires >= self.clock() else None

    def active(self, subject_id: str, cipher: str) -> DataKey | None:
        """The subject's key for encrypting with the cipher, if cached (its time unchecked)."""
        return self._active.get((subject_id, cipher))

    def keep(self, key: DataKey, *, epoch: int, active: bool = False) -> None:
        """Keep a key loaded by a transaction that read `epoch`, unless the cache has moved past
        it since (see the module's text); `active`: also as its subject's key for encrypting."""
        with self._lock:
            if epoch != self.epoch:
                return
            self._keys[(key.subject_id, key.version)] = key
            self._keys.move_to_end((key.subject_id, key.version))
            while len(self._keys) > self.size:
                _, dropped = self._keys.popitem(last=False)
                dropped_active = (dropped.subject_id, dropped.cipher.name)
                if self._active.get(dropped_active) is dropped:
                    del self._active[dropped_active]
            if active:
                self._active[(key.subject_id, key.cipher.name)] = key

    def usable(self, subject_id: str, cipher: str,
               checked: set[tuple[str, int]]) -> DataKey | None:
        """The subject's key for encrypting with the cipher, if in time and among the versions
        a transaction saw active (`checked`); else None, and if it is not among them, the
        subject's keys are dropped: one was destroyed or rotated since."""
        key = self._active.get((subject_id, cipher))
        if key is None or key.expires < self.clock():
            return None
        if (subject_id, key.version) not in checked:
            self.evict(subject_id)
            return None
        return key

    def evict(self, subject_id: str) -> None:
        with self._lock:
            for entry in [k for k in self._keys if k[0] == subject_id]:
                del self._keys[entry]
            for active in [k for k in self._active if k[0] == subject_id]:
                del self._active[active]

    def service(self, name: str) -> bytes | None:
        cached = self._service.get(name)
        return cached[0] if cached is not None and cached[1] >= self.clock() else None

    def keep_service(self, name: str, clear: bytes) -> None:
        """A service key never changes once made (a KEK rotation rewraps it)."""
        with self._lock:
            self._service[name] = (clear, self.clock() + self.ttl)
