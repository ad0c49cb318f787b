"""Stop strings: cut finished text, and hold back streamed text that may start a stop string."""

from __future__ import annotations


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    hits = [text.index(s) for s in stops if s and s in text]
    if not hits:
        return text, False
    return text[: min(hits)], True


class StopFilter:
    """Streaming counterpart of :func:`cut_at_stop`.

    A stop string can arrive split over several pieces (``"##"`` + ``"#"``), so text that could
    be the start of a stop string is held back until it is known not to be one.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.buffer = ""
        self.done = False

    def feed(self, piece: str) -> str:
        """The text that is now safe to show."""
        if self.done:
            return ""
        self.buffer += piece
        text, hit = cut_at_stop(self.buffer, self.stops)
        if hit:
            self.done, self.buffer = True, ""
            return text
        keep = self._held_back()
        out, self.buffer = self.buffer[: len(self.buffer) - keep], self.buffer[len(self.buffer) - keep:]
        return out

    def flush(self) -> str:
        """What is left at the end of generation (it was not a stop string)."""
        out, self.buffer = ("" if self.done else self.buffer), ""
        return out

    def _held_back(self) -> int:
        """Length of the longest buffer suffix that is a proper prefix of a stop string."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.buffer)), best, -1):
                if self.buffer.endswith(s[:k]):
                    best = k
                    break
        return best


def find_stop(text: str, stops: list[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


def safe_prefix(text: str, stops: list[str]) -> int:
    """How much of ``text`` can be shown while generating: hold back a trailing partial stop
    string and a half-decoded character (U+FFFD while a multi-byte character is incomplete)."""
    end = len(text.rstrip("\ufffd"))
    for s in stops:
        for k in range(min(len(s) - 1, end), 0, -1):
            if text[:end].endswith(s[:k]):
                end = min(end, end - k)
                break
    return end
