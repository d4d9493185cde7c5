"""spaCy's vocabulary kept to the model's own words: what scans add to it is forgotten.

spaCy adds every word it has not seen before to its vocabulary (a lexeme and its strings: the
word, its lower case, shape, prefix and suffix) and keeps it for the life of the process. A
gateway scanning customer notes would keep every e-mail address, order number and name it ever
read, and grow without end: measured, 0.7-0.86 KB and 4.6 strings a 300-character note,
3.0-3.7 GB a day per process at 50 notes a second (bench/pii_memory.py).

spaCy's memory zones (3.8) evict what was added to the vocabulary while one was open when it
closes, and a document made inside one must not be read after it has closed. So one zone is kept
open across scans; every scan holds it while it makes or reads documents, and once none does and
the zone has gathered `rotate_at` strings, it is closed and a new one opened. Past `wait_at`
strings (concurrent scans overlapping without a pause), a new scan waits for those in flight,
each bounded by its deadline, so that the zone can close.

Inside a zone spaCy's tokenizer does not add to its cache either (that cache, of every distinct
chunk of text between spaces, grows the same way outside one), and without it a note costs 10-20%
more CPU. So the cache is filled outside any zone: first with the model's own words, then at each
zone's close with the chunks that were in at least COMMON of the texts it read and are, but for
punctuation around them, strings the model itself shipped with ("Street,", "said."), and have
nothing of an identifier in them: nothing a customer wrote that the model did not already hold
as a word is kept. At most KEEP chunks in all.
"""

from __future__ import annotations

import logging
import re
import string
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
from spacy.language import Language

from app.pii.deadline import Deadline

logger = logging.getLogger(__name__)

# strings a zone gathers before it is closed (about 4 MB); a scan waits past WAIT_FACTOR times
ROTATE_AT = 20_000
WAIT_FACTOR = 10
COMMON = 3  # texts a chunk must be in to be cached for good when the zone closes
COUNTED = 20_000  # distinct chunks counted in a zone (about 3 MB)
KEEP = 20_000  # chunks cached for good (about 3 MB)
LONGEST = 30  # characters of a chunk counted
KEEP_AT_ONCE = 1_000  # chunks tokenized in one text (spaCy refuses texts past a million)
_PUNCTUATION = string.punctuation + "“”‘’«»…–—"
# never kept, even where the model holds them (its training text has handles, links and
# addresses of real people): anything with a digit, an at sign, a slash or a hash
_IDENTIFIER = re.compile(r"[0-9@/#]")


class Vocabulary:
    """The memory zone the scans of one pipeline make their documents in."""

    def __init__(self, nlp: Language, *, rotate_at: int = ROTATE_AT):
        self._nlp = nlp
        self.rotate_at = rotate_at
        self.wait_at = rotate_at * WAIT_FACTOR
        self._changed = threading.Condition()
        self._holders = 0
        self._held = threading.local()  # how deep this thread holds the zone
        self._counts: Counter[str] = Counter()  # texts of the open zone each chunk was in
        strings = nlp.vocab.strings  # the model's own, as loaded (hashes, sorted)
        self._model_strings = np.unique(np.fromiter(
            (strings.as_int(text) for text in strings), dtype=np.uint64, count=len(strings)))
        self.kept: set[str] = set()
        self._keep([lexeme.orth_ for lexeme in nlp.vocab])
        self._base = len(nlp.vocab.strings)
        self._zone: AbstractContextManager[Any] = nlp.memory_zone()
        self._zone.__enter__()
        self.closed = 0  # zones closed so far

    def added(self) -> int:
        """Strings the open zone has added to the model's."""
        return len(self._nlp.vocab.strings) - self._base

    @contextmanager
    def held(self, deadline: Deadline | None = None) -> Iterator[None]:
        """Hold the zone while making spaCy documents and reading them: no document outlives
        the zone it was made in. A thread already holding it holds it again without waiting;
        another waits for a full zone to close at most until its `deadline` (ScanTimeout)."""
        depth = getattr(self._held, "depth", 0)
        if not depth:
            with self._changed:
                while self._holders and self.added() >= max(self.wait_at, self.rotate_at):
                    if deadline is not None:
                        deadline.check()
                    # woken when the zone closes; a minute at most, to check the deadline again
                    self._changed.wait(min(deadline.remaining(), 60.0) if deadline else 60.0)
                self._holders += 1
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if not depth:
                with self._changed:
                    self._holders -= 1
                    if not self._holders and self.added() >= self.rotate_at:
                        self._rotate()
                        self._changed.notify_all()

    def count(self, texts: Iterable[str]) -> None:
        """Count the words of texts about to be read (holding the zone and the pipeline's lock):
        the common ones are kept in the tokenizer's cache when the zone closes."""
        counts = self._counts
        for text in texts:
            for chunk in set(text.split()):
                if chunk in counts:
                    counts[chunk] += 1
                elif len(counts) < COUNTED and len(chunk) <= LONGEST:
                    counts[chunk] = 1

    def _the_models(self, chunks: list[str]) -> list[str]:
        """The chunks that are, but for punctuation around them, strings the model shipped
        (punctuation alone: itself one), with nothing of an identifier in them."""
        strings = self._nlp.vocab.strings
        chunks = [chunk for chunk in chunks if not _IDENTIFIER.search(chunk)]
        cores = [chunk.strip(_PUNCTUATION) or chunk for chunk in chunks]
        hashes = np.fromiter((strings.as_int(core) for core in cores), dtype=np.uint64,
                             count=len(cores))
        found = self._model_strings[np.minimum(np.searchsorted(self._model_strings, hashes),
                                               len(self._model_strings) - 1)] == hashes
        return [chunk for chunk, known in zip(chunks, found, strict=True) if known]

    def _keep(self, chunks: list[str]) -> None:
        """Tokenize `chunks` outside any zone: the tokenizer caches them, and keeps them."""
        chunks = [chunk for chunk in chunks if chunk not in self.kept][:KEEP - len(self.kept)]
        for first in range(0, len(chunks), KEEP_AT_ONCE):
            self._nlp.make_doc(" ".join(chunks[first:first + KEEP_AT_ONCE]))
        self.kept.update(chunks)

    def _rotate(self) -> None:
        """Close the zone, forgetting what it added, and open the next (no holders)."""
        self._zone.__exit__(None, None, None)
        self.closed += 1
        try:
            self._keep(self._the_models(
                [chunk for chunk, texts in self._counts.most_common() if texts >= COMMON]))
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation; the zone
            # must open again whatever it met (the type only: a message may quote the text)
            logger.error("PII vocabulary: common words not cached (%s)", type(exc).__name__)
        finally:
            self._counts.clear()
            self._base = len(self._nlp.vocab.strings)  # with what was added to stay
            self._zone = self._nlp.memory_zone()
            self._zone.__enter__()
