"""Read a run's log line by line, whatever shape it reached us in, without loading it whole.

A log arrives as plain text, as the text of Kaggle's log viewer (`12.5s<TAB>17<TAB>text`), or as
Kaggle's output log: a JSON array of `{"stream_name", "time", "data"}` elements that may be cut off
mid-element, with no closing bracket, and whose lines may be split across elements. Every shape is
turned into the same `LogLine(time, stream, text)` stream so the analysis never cares where a log
came from. Logs can be 100 MB or more, so everything here streams with bounded memory, and damage
(binary bytes, malformed elements, a truncated tail) becomes a note instead of an exception.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from lib.runlog.values import number

CHUNK = 1 << 20
MAX_LINE = 1 << 20
MAX_ELEMENT = 8 << 20
SNIFF = 1 << 16

_VIEWER = re.compile(r"(\d+(?:\.\d+)?)s\t\d+\t(.*)", re.DOTALL)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NEXT_ELEMENT = re.compile(r"\n\s*,?\s*\{")


class LogLine(NamedTuple):
    """One line of output: `time` is seconds since the kernel started when the log says so."""

    time: float | None
    stream: str
    text: str


class LogReader:
    """Iterate the lines of one log file; `format` and `notes` describe what was found.

    Iterate once. After iteration `notes` says, in words, what could not be read (binary
    content, malformed or truncated elements), `lines` how many lines were produced.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.format = "unknown"
        self.notes: list[str] = []
        self.lines = 0
        self.malformed = 0
        self.truncated = False

    def __iter__(self) -> Iterator[LogLine]:
        try:
            with self.path.open("rb") as handle:
                self.format = sniff(handle.read(SNIFF))
                handle.seek(0)
                for line in self._lines(handle):
                    self.lines += 1
                    yield line
        except OSError as error:
            self.format = "unreadable"
            self.notes.append(f"cannot read {self.path}: {error.strerror or error}")

    def _lines(self, handle: BinaryIO) -> Iterator[LogLine]:
        if self.format == "empty":
            self.notes.append("the log is empty")
            return iter(())
        if self.format == "binary":
            self.notes.append("the file holds binary data (NUL bytes or not UTF-8 text): not a log")
            return iter(())
        if self.format == "kaggle-json":
            return _join_streams(self._elements(handle))
        return self._text(handle)

    def _text(self, handle: BinaryIO) -> Iterator[LogLine]:
        viewer = self.format == "kaggle-viewer"
        while raw := handle.readline(MAX_LINE):
            for text in _split(raw.decode("utf-8", errors="replace")):
                match = _VIEWER.match(text) if viewer else None
                if match:
                    yield LogLine(float(match.group(1)), "stdout", match.group(2))
                else:
                    yield LogLine(None, "stdout", text)

    def _elements(self, handle: BinaryIO) -> Iterator[dict]:
        """The JSON objects of a Kaggle output log, read a chunk at a time.

        The incremental UTF-8 decoder keeps a character split across two chunks whole.
        """
        decoder = json.JSONDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        buf, pos, eof = "", 0, False
        while True:
            if not eof and len(buf) - pos < SNIFF:
                chunk = handle.read(CHUNK)
                eof = not chunk
                buf = buf[pos:] + utf8.decode(chunk, final=eof)
                pos = 0
            pos = _skip_separators(buf, pos)
            if pos >= len(buf):
                if eof:
                    self._note_truncated("the Kaggle log has no closing ']' (cut off)")
                    return
                continue
            if buf[pos] == "]":
                return
            try:
                element, pos = decoder.raw_decode(buf, pos)
            except RecursionError:  # nested deeper than Python's parser goes: skip the element
                self.malformed += 1
                pos = _resync(buf, pos)
                continue
            except json.JSONDecodeError:
                if not eof and len(buf) - pos < MAX_ELEMENT:
                    chunk = handle.read(CHUNK)
                    eof = not chunk
                    buf += utf8.decode(chunk, final=eof)
                    continue
                if eof and _NEXT_ELEMENT.search(buf, pos + 1) is None:
                    self._note_truncated("the Kaggle log ends inside an element (cut off mid-line)")
                    return
                self.malformed += 1
                pos = _resync(buf, pos)
                continue
            if _valid_element(element):
                yield element
            else:
                self.malformed += 1

    def _note_truncated(self, message: str) -> None:
        self.truncated = True
        self.notes.append(message)

    def summary_notes(self) -> list[str]:
        """The notes plus a count of malformed elements, for the report."""
        extra = [f"{self.malformed} malformed element(s) skipped"] if self.malformed else []
        return self.notes + extra


def sniff(head: bytes) -> str:
    """The shape of a log from its first bytes: empty, binary, kaggle-json, kaggle-viewer or text."""
    if not head.strip():
        return "empty"
    if b"\x00" in head:
        return "binary"
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 20):
        return "binary"
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("[") and (stripped[1:].lstrip()[:1] in ("", "{", "]")):
        return "kaggle-json"
    if _VIEWER.match(stripped.split("\n", 1)[0]):
        return "kaggle-viewer"
    return "text"


def _split(text: str) -> list[str]:
    """Lines of a chunk of output; carriage returns (progress bars) end a line too."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n")


def _skip_separators(buf: str, pos: int) -> int:
    n = len(buf)
    while pos < n and buf[pos] in "\ufeff \t\r\n,[":
        pos += 1
    return pos


def _resync(buf: str, pos: int) -> int:
    """Where the next element starts after a malformed one (end of buffer when none is seen)."""
    match = _NEXT_ELEMENT.search(buf, pos + 1)
    return match.start() if match else len(buf)


def _valid_element(element: object) -> bool:
    return (
        isinstance(element, dict)
        and isinstance(element.get("data"), str)
        and isinstance(element.get("time", 0.0), (int, float))
    )


def _join_streams(elements: Iterator[dict]) -> Iterator[LogLine]:
    """Whole lines from elements: text without a final newline waits for the rest of its line.

    Each stream (stdout, stderr) is joined separately; a line takes the time of the element where
    it started.
    """
    pending: dict[str, tuple[float | None, str]] = {}
    for element in elements:
        stream = str(element.get("stream_name", "stdout"))[:40]
        time = number(element.get("time"))
        start, head = pending.pop(stream, (time, ""))
        data = head + element["data"]
        if len(data) > MAX_LINE and "\n" not in data:
            data += "\n"
        parts = _split(data)
        complete = data.endswith(("\n", "\r"))
        if not complete:
            pending[stream] = (start if len(parts) == 1 else time, parts.pop())
        for i, text in enumerate(parts):
            yield LogLine(start if i == 0 else time, stream, text)
    for stream, (start, text) in pending.items():
        if text:
            yield LogLine(start, stream, text)


def find_log(folder: Path) -> Path | None:
    """The log of a run folder: `run.log`, else the largest `*.log`, else the largest `*.txt`."""
    if (folder / "run.log").is_file():
        return folder / "run.log"
    for pattern in ("*.log", "*.txt"):
        found = [p for p in folder.rglob(pattern) if p.is_file()]
        if found:
            return max(found, key=lambda p: p.stat().st_size)
    return None


SWEEPS = "sweeps"  # runs/sweeps/<name>/ holds sweeps (fetch_logs.py --sweep), not one run


def newest_run(runs_dir: Path) -> Path | None:
    """The most recently modified run folder under `runs_dir` (sweeps aside), or None."""
    if not runs_dir.is_dir():
        return None
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and p.name != SWEEPS]
    return max(folders, key=lambda p: p.stat().st_mtime, default=None)


def last_push(runs_dir: Path) -> dict | None:
    """The record `push_kernel.py` leaves in `runs/last_push.json`, or None when absent or unreadable."""
    path = runs_dir / "last_push.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("ref"), str):
        return None
    return record


REF = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+(/\d+)?$")


def choose_target(target: str | None, runs_dir: Path) -> tuple[str, str | Path]:
    """What to analyse: ("path", file or folder) or ("kaggle", "owner/slug[/version]").

    With no target: the last Kaggle push when it is newer than the newest run folder, else the
    newest run folder. A ValueError says what was wrong and what to give instead.
    """
    if target is None:
        push, newest = last_push(runs_dir), newest_run(runs_dir)
        if push is not None and (newest is None or _pushed_at(push) > newest.stat().st_mtime):
            return "kaggle", push["ref"]
        if newest is not None:
            return "path", newest
        raise ValueError(f"no run under {runs_dir}/ and no {runs_dir}/last_push.json: run push_kernel.py "
                         "first, or give a log file, a run folder or OWNER/SLUG")
    if Path(target).exists():
        return "path", Path(target)
    if REF.match(target):
        return "kaggle", target
    raise ValueError(f"'{target}' is neither an existing file or folder nor a Kaggle kernel "
                     "OWNER/SLUG[/VERSION]")


def _pushed_at(push: dict) -> float:
    value = push.get("pushed_at")
    return float(value) if isinstance(value, (int, float)) else 0.0
