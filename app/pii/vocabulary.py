"""spaCy's vocabulary kept to the model's own words: what scans add to it is forgotten.

spaCy adds every word it has not seen before to its vocabulary (a lexeme and its strings: the
word, its lower case, shape, prefix and suffix) and keeps it for the life of the process. A
gateway scanning customer notes would keep every e-mail address, order number and name it ever
read, and grow without end: measured, 0.86 KB and 4.6 strings a 300-character note, about
3.7 GB a day per process at 50 notes a second (bench/pii_memory.py).

spaCy's memory zones (3.8) evict what was added to the vocabulary while one was open when it
closes, and a document made inside one must not be read after it has closed. So one zone is kept
open across scans; every scan holds it while it makes or reads documents, and once none does and
the zone has gathered `rotate_at` strings, it is closed and a new one opened. Past `wait_at`
strings (concurrent scans overlapping without a pause), a new scan waits for those in flight,
each bounded by its deadline, so that the zone can close.

Inside a zone spaCy's tokenizer does not add to its cache either (that cache, of every distinct
chunk of text between spaces, grows the same way outside one), and without it a note costs 10-20%
more CPU. So the cache is filled outside any zone: first with the model's own words, then at each
zone's close with the words that were in at least COMMON of the texts it read (no digits, no "@":
the language's words, not a customer's identifiers), up to KEEP in all, never forgotten.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from spacy.language import Language

# strings a zone gathers before it is closed (about 4 MB); a scan waits past WAIT_FACTOR times
ROTATE_AT = 20_000
WAIT_FACTOR = 10
COMMON = 3  # texts a word must be in to be cached for good when the zone closes
COUNTED = 20_000  # distinct words counted in a zone (about 3 MB)
KEEP = 20_000  # words cached for good (about 3 MB)
_IDENTIFIER = re.compile(r"[0-9@]")


class Vocabulary:
    """The memory zone the scans of one pipeline make their documents in."""

    def __init__(self, nlp: Language, *, rotate_at: int = ROTATE_AT):
        self._nlp = nlp
        self.rotate_at = rotate_at
        self.wait_at = rotate_at * WAIT_FACTOR
        self._changed = threading.Condition()
        self._holders = 0
        self._held = threading.local()  # how deep this thread holds the zone
        self._counts: Counter[str] = Counter()  # texts of the open zone each word was in
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
    def held(self) -> Iterator[None]:
        """Hold the zone while making spaCy documents and reading them: no document outlives
        the zone it was made in. A thread already holding it holds it again without waiting."""
        depth = getattr(self._held, "depth", 0)
        if not depth:
            with self._changed:
                while self._holders and self.added() >= self.wait_at:
                    self._changed.wait()
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
            for word in set(text.split()):
                if word in counts:
                    counts[word] += 1
                elif len(counts) < COUNTED and not _IDENTIFIER.search(word):
                    counts[word] = 1

    def _keep(self, words: list[str]) -> None:
        """Tokenize `words` outside any zone: the tokenizer caches them, and keeps them."""
        words = [word for word in words if word not in self.kept][:KEEP - len(self.kept)]
        if words:
            self._nlp.make_doc(" ".join(words))
            self.kept.update(words)

    def _rotate(self) -> None:
        """Close the zone, forgetting what it added, and open the next (no holders)."""
        self._zone.__exit__(None, None, None)
        self.closed += 1
        self._keep([word for word, texts in self._counts.most_common() if texts >= COMMON])
        self._counts.clear()
        self._base = len(self._nlp.vocab.strings)  # with what was added to stay, if anything
        self._zone = self._nlp.memory_zone()
        self._zone.__enter__()
