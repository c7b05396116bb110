"""Text of a PDF snapshot, as the Markdown of its version (reference §2.4, PDF path).

OTA converts PDFs with a pdf.js-based toolchain that makes each text line a paragraph.
Byte-identical output is out of reach in Python; this keeps the same shape: one paragraph
per text line, in reading order, separated by blank lines, with a line that starts like an
ordered-list item (`1. `) escaped (`1\\. `) as OTA's Markdown serialiser does, so it stays
text rather than becoming a list.

A PDF is untrusted input, and a small one can be a decompression bomb (Flate streams
that inflate a thousandfold inside pdfminer). So the parsing runs in a forked child
process with an address-space limit (RLIMIT_AS, MEMORY_LIMIT bytes beyond the size
of the process) and a time limit (TIME_LIMIT seconds, then it is killed): a PDF past
either fails its own document with a clear error, and the caller's memory is never
touched. Forking costs a few tens of milliseconds (bench/pdf.py) and needs no new
import (the child has pdfminer already). Where there is no fork (Windows), it runs
in-process, unlimited.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import select
import signal
import time
from collections.abc import Iterator

from pdfminer.high_level import extract_pages
from pdfminer.layout import LAParams, LTTextContainer, LTTextLine

from termshift.errors import ExtractError, TermshiftError

__all__ = ["pdf_to_text"]

MEMORY_LIMIT = 2 * 1024**3  # bytes the extraction may add to the process's address space
TIME_LIMIT = 300.0  # seconds one PDF may take (pdfminer reads about a page in 0.1-1 s)

_OUT_OF_MEMORY = 3  # the child's exit code when it ran out of its memory

_WHITESPACE = re.compile(r"\s+")
_ORDERED_LIST_START = re.compile(r"^(\d+)\.(?=\s|$)")

# pdfminer logs every recoverable oddity of real-world PDFs at WARNING level.
logging.getLogger("pdfminer").setLevel(logging.ERROR)


def pdf_to_text(data: bytes, location: str, *, memory_limit: int = MEMORY_LIMIT,
                time_limit: float = TIME_LIMIT) -> str:
    """The text lines of the PDF `data` (fetched from `location`) as blank-line-separated paragraphs.

    Raises ExtractError("Can't parse PDF file") when the file cannot be read, OTA's
    "contains no text" error when it has no text layer (e.g. scanned pages), and an
    ExtractError naming the limit when parsing needs more than `memory_limit` bytes of
    memory or `time_limit` seconds.
    """
    lines = _extract_lines(data, location, memory_limit, time_limit)
    if not lines:
        raise ExtractError(
            f"The PDF file at '{location}' contains no text, it might contain scanned images "
            "of text instead of actual text"
        )
    return "\n\n".join(lines)


class PdfParserError(TermshiftError):
    """pdfminer's own error, as the child process reported it (the cause of "Can't parse PDF file")."""


def _extract_lines(data: bytes, location: str, memory_limit: int, time_limit: float) -> list[str]:
    if not hasattr(os, "fork"):
        try:
            return list(_text_lines(data))
        except Exception as error:  # noqa: BLE001 — any failure of the parser on untrusted bytes
            raise ExtractError("Can't parse PDF file") from error
    answer, status = _run_in_child(data, memory_limit, time_limit)
    if answer is not None and answer[0] == "lines":
        return answer[1]
    if answer is not None and answer[0] == "error":
        raise ExtractError("Can't parse PDF file") from PdfParserError(answer[1])
    if (answer is not None and answer[0] == "memory") or status == _OUT_OF_MEMORY:
        raise ExtractError(
            f"The PDF file at '{location}' needs more than {memory_limit // 1024**2} MiB of memory to extract "
            "(a decompression bomb?)"
        )
    if status in (-signal.SIGKILL, -signal.SIGXCPU):
        raise ExtractError(f"The PDF file at '{location}' takes more than {time_limit:g} seconds to extract")
    raise ExtractError("Can't parse PDF file") from PdfParserError(
        f"the extraction process ended with status {status}"
    )


def _run_in_child(data: bytes, memory_limit: int, time_limit: float) -> tuple[tuple | None, int]:
    """Fork, parse in the child, and return (its answer or None, its exit status: code, or -signal).

    A plain fork and a pipe rather than `multiprocessing`: it works from any thread and
    from a daemonic worker process, and the child runs nothing but the parser.
    """
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(reading)
        _child(writing, data, memory_limit, time_limit)
    os.close(writing)
    chunks: list[bytes] = []
    deadline = time.monotonic() + time_limit
    killed = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([reading], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            chunk = os.read(reading, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(reading)
        _pid, wait_status = os.waitpid(pid, 0)
    status = -signal.SIGKILL if killed else os.waitstatus_to_exitcode(wait_status)
    if killed or not chunks:
        return None, status
    try:
        return pickle.loads(b"".join(chunks)), status
    except Exception:  # noqa: BLE001 — a child killed mid-write left half an answer
        return None, status


def _child(writing: int, data: bytes, memory_limit: int, time_limit: float) -> None:
    """In the forked child: limit memory and CPU time, parse, write the pickled answer, exit."""
    code = 0
    try:
        for name in ("SIGINT", "SIGTERM"):  # the parent's handlers are not ours
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        try:
            import resource

            ceiling = _address_space() + memory_limit
            resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
            seconds = int(time_limit) + 2  # a backstop: the parent kills the child at `time_limit`
            resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
        except (ImportError, OSError, ValueError):
            pass  # no limits here: the parent's time limit still applies
        try:
            answer: tuple = ("lines", list(_text_lines(data)))
        except MemoryError:
            answer = ("memory",)
        except Exception as error:  # noqa: BLE001 — any failure of the parser on untrusted bytes
            answer = ("error", f"{type(error).__name__}: {error}")
        payload = memoryview(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
        while payload:
            payload = payload[os.write(writing, payload):]
    except MemoryError:
        code = _OUT_OF_MEMORY
    except BaseException:  # noqa: BLE001 — whatever happens, the child must not return into the caller
        code = 1
    finally:
        os._exit(code)


def _address_space() -> int:
    """The process's current virtual size in bytes (the memory limit is counted from there)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _text_lines(data: bytes) -> Iterator[str]:
    """Each non-blank text line of each page, in pdfminer's reading order."""
    for page in extract_pages(io.BytesIO(data), laparams=LAParams()):
        for element in page:
            if isinstance(element, LTTextContainer):
                yield from _lines_of(element)


def _lines_of(container: LTTextContainer):
    lines = [container] if isinstance(container, LTTextLine) else container
    for line in lines:
        text = _WHITESPACE.sub(" ", line.get_text()).strip()
        if text:
            yield _ORDERED_LIST_START.sub(r"\1\\.", text)
