"""Spreadsheet-safe CSV, produced in chunks: the pieces every export shares (incidents.csv, rankings.csv, …).

- `neutralise(text)`: a cell a spreadsheet would run as a formula gets a leading apostrophe.
- `CsvChunks`: a synchronous encoder; `row()` hands back a UTF-8 chunk every `rows_per_chunk` rows,
  `flush()` whatever is buffered. The first chunk starts with the BOM and the header row.
- `encode_csv(header, rows)`: the same over an async iterable of rows, for a streamed response; the
  BOM and header go out at once, before the first row is read.
- `attachment_headers(filename)`: the response headers of a download.

Which cells are neutralised is decided by type, so one rule holds for every export: a `str` is text
of unknown origin (names an admin typed, notes a rider wrote, pseudonyms) and is neutralised; an
`int`, `float` or `Decimal` is a number the export itself produced and is written as a number, so a
negative coordinate or score stays `-33.86`, not `'-33.86`. An export that wants a number to read as
a number passes it as one; `None` is an empty cell.
"""

from __future__ import annotations

import csv
import decimal
import io
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

# Excel reads a file as UTF-8 only when it starts with a byte order mark; without one, Chinese
# names turn into mojibake in the Excel most supervisors open exports with.
BOM = "\ufeff"
# OWASP "CSV injection": = + - @ start a formula; a leading tab or carriage return can be stripped
# by the spreadsheet on import and expose one of those behind it.
FORMULA_TRIGGERS = frozenset("=+-@\t\r")
ROWS_PER_CHUNK = 500

Cell = str | int | float | decimal.Decimal | None

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def neutralise(text: str) -> str:
    """`=1+1` → `'=1+1`: shown as typed instead of evaluated; any other text unchanged."""
    return "'" + text if text and text[0] in FORMULA_TRIGGERS else text


def safe_cells(row: Iterable[Cell]) -> list[Cell]:
    """A row with its text cells neutralised and its numbers left as numbers."""
    # neutralise() inlined: this runs for every cell of a million-row export, where a function call per
    # cell is a visible share of the time. (`cell[:1]` of an empty string is "", not a trigger.)
    return ["'" + cell if isinstance(cell, str) and cell[:1] in FORMULA_TRIGGERS else cell for cell in row]


class CsvChunks:
    """Rows in, UTF-8 chunks out, holding at most `rows_per_chunk` rows of text at a time."""

    def __init__(self, header: Sequence[str], *, rows_per_chunk: int = ROWS_PER_CHUNK, bom: bool = True) -> None:
        if rows_per_chunk < 1:
            raise ValueError("rows_per_chunk must be at least 1")
        self._buffer = io.StringIO()
        # RFC 4180 line ends; csv quotes any cell holding a comma, a quote or a line break.
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")
        self._rows_per_chunk = rows_per_chunk
        self._pending = 0
        self.rows = 0  # data rows written so far (the header not counted)
        if bom:
            self._buffer.write(BOM)
        self._writer.writerow(safe_cells(header))

    def row(self, cells: Iterable[Cell]) -> bytes | None:
        """Add one row; a chunk when the buffer is due to be flushed, else None."""
        self._writer.writerow(safe_cells(cells))
        self.rows += 1
        self._pending += 1
        if self._pending >= self._rows_per_chunk:
            return self.flush()
        return None

    def flush(self) -> bytes:
        """Whatever is buffered, as one chunk (b"" when nothing is)."""
        chunk = self._buffer.getvalue().encode("utf-8")
        self._buffer.seek(0)
        self._buffer.truncate(0)
        self._pending = 0
        return chunk


async def encode_csv(header: Sequence[str], rows: AsyncIterable[Iterable[Cell]], *,
                     rows_per_chunk: int = ROWS_PER_CHUNK, bom: bool = True) -> AsyncIterator[bytes]:
    """The CSV of `rows` as UTF-8 chunks: the BOM and header alone, then about `rows_per_chunk` rows each."""
    chunks = CsvChunks(header, rows_per_chunk=rows_per_chunk, bom=bom)
    # Sent before the first row is read: a query that sorts a million rows first takes seconds to
    # answer, and meanwhile the browser shows a download that has started.
    yield chunks.flush()
    async for cells in rows:
        chunk = chunks.row(cells)
        if chunk is not None:
            yield chunk
    last = chunks.flush()
    if last:
        yield last


def attachment_headers(filename: str) -> dict[str, str]:
    """Headers of a CSV download: an ASCII-safe file name, never cached (exports carry personal data)."""
    safe = _UNSAFE_FILENAME.sub("_", filename).strip("._") or "export.csv"
    return {
        "Content-Disposition": f'attachment; filename="{safe}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
