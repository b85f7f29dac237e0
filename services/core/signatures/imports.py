"""Paper and bulk import: signatures from a CSV file, streamed in constant memory.

Records are validated with :class:`SignatureFields` and written ``batch_size`` rows per statement; bad rows
are reported by line and skipped, a bad file raises :class:`InvalidImportFile`. Rows are attested, and
closed petitions and rows without email are accepted on purpose: docs/signatures.md, "Imports".
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import IO

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.core.campaigns.errors import CampaignArchived, PartnerOrganisationNotFound, PetitionNotFound
from services.core.campaigns.models import CampaignStatus
from services.core.refs import Ref
from services.core.signatures import policy, store
from services.core.signatures.errors import InvalidImportFile
from services.core.signatures.models import Channel
from services.core.signatures.schemas import SignatureFields
from services.core.signatures.store import PreparedSignature
from services.core.users.security import Principal

COLUMNS = ("name", "email", "country", "postal_code", "language", "opt_in", "source")
REQUIRED_COLUMNS = ("name", "country")
BATCH_SIZE = 1000  # rows between two progress callbacks
# From this many rows an import refreshes the statistics of `signatures` (ANALYZE, in its transaction).
ANALYZE_AFTER_ROWS = 10_000
MAX_ERROR_DETAILS = 1000
# The largest file the HTTP upload takes (about a million rows; `loom import-signatures` has no limit).
MAX_UPLOAD_BYTES = 128 * 1024 * 1024
MAX_LINE_CHARS = 1_000_000  # one record (quoted line breaks included) longer than this is a fatal error

_TRUE = frozenset({"true", "yes", "1", "y"})
_FALSE = frozenset({"false", "no", "0", "n", ""})

Chunk = bytes | str
Source = AsyncIterable[Chunk] | Iterable[Chunk] | IO[str] | IO[bytes]


class RowError(BaseModel):
    line: int = Field(description="The file's line number of the bad row (1 is the header).")
    reason: str


class ImportReport(BaseModel):
    petition: uuid.UUID
    partner: uuid.UUID | None = Field(description="The organisation the signatures were attributed to.")
    imported: int = Field(description="Rows stored (deduplication happens afterwards, in the worker).")
    rejected: int = Field(description="Bad rows, skipped.")
    errors: list[RowError] = Field(
        description=f"The first {MAX_ERROR_DETAILS} bad rows: line number and reason. Never holds the "
        "rows' contents."
    )
    errors_truncated: bool = Field(description="True when more rows were bad than `errors` lists.")


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Passed to the progress callback after every batch written."""

    lines: int
    imported: int
    rejected: int


ProgressCallback = Callable[[ImportProgress], None]


class _Records:
    """A refillable line iterator for :class:`csv.reader`: it only ever holds whole CSV records (a
    record's lines are released together once its quotes balance), so the reader never runs dry in the
    middle of one. Not a generator: it can say "nothing more for now" (StopIteration) and be refilled."""

    def __init__(self) -> None:
        self.ready: deque[str] = deque()
        self._staged: list[str] = []
        self._staged_chars = 0
        self._quotes = 0
        self._pending = ""
        self.lines = 0  # physical lines received

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self.ready:
            raise StopIteration
        return self.ready.popleft()

    def feed(self, data: str) -> None:
        data = self._pending + data
        cut = data.rfind("\n") + 1
        self._pending = data[cut:]
        if len(self._pending) > MAX_LINE_CHARS:
            raise InvalidImportFile(f"Line {self.lines + 1} is longer than {MAX_LINE_CHARS} characters.")
        if cut:
            for line in data[:cut].splitlines(keepends=True):
                self._line(line)

    def close(self) -> None:
        if self._pending:
            self._line(self._pending)
            self._pending = ""
        if self._staged:  # an unterminated quoted field: let the reader make what it can of it
            self.ready.extend(self._staged)
            self._staged = []

    def _line(self, line: str) -> None:
        self.lines += 1
        self._staged.append(line)
        self._staged_chars += len(line)
        self._quotes += line.count('"')
        if self._quotes % 2 == 0:
            self.ready.extend(self._staged)
            self._staged, self._staged_chars, self._quotes = [], 0, 0
        elif self._staged_chars > MAX_LINE_CHARS:
            raise InvalidImportFile(
                f"Line {self.lines - len(self._staged) + 1} opens a quoted field that does not end "
                f"within {MAX_LINE_CHARS} characters."
            )


def parse_opt_in(value: str | None) -> bool:
    folded = (value or "").strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError("opt_in: must be one of true/false, yes/no, 1/0 or empty")


def row_fields(row: dict[str | None, str | list[str] | None]) -> SignatureFields:
    """A CSV row as validated signature fields; ValueError (a reason without the row's data) if bad."""
    if None in row:
        raise ValueError("more fields than the header has columns")
    values: dict[str, object] = {}
    for column in COLUMNS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            values[column] = value
    values["opt_in"] = parse_opt_in(values.get("opt_in"))  # type: ignore[arg-type]
    try:
        return SignatureFields.model_validate(values)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())
        ) from None


def check_header(fieldnames: Iterable[str] | None) -> list[str]:
    names = [name.strip().lower() for name in fieldnames or ()]
    if not any(names):
        raise InvalidImportFile(f"The file needs a header line naming its columns: {', '.join(COLUMNS)}.")
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise InvalidImportFile(
            f"Unknown column(s) {', '.join(repr(n) for n in unknown)}; the columns are {', '.join(COLUMNS)}."
        )
    if len(set(names)) != len(names):
        raise InvalidImportFile("A column appears twice in the header.")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise InvalidImportFile(f"Missing column(s): {', '.join(missing)}.")
    return names


@dataclass(frozen=True, slots=True)
class ImportTarget:
    petition_id: uuid.UUID
    consent_version: int
    organisation_id: uuid.UUID | None


async def resolve_target(
    conn: AsyncSession | AsyncConnection, petition: Ref | str, partner: Ref | str | None
) -> ImportTarget:
    """The petition and the partner organisation (each by id or slug) an import writes to."""
    petition = _ref(petition)
    found = await store.signing_petition(conn, petition)
    if found is None:
        raise PetitionNotFound(f"No petition {petition.text!r}.")
    if found.status is CampaignStatus.archived:
        raise CampaignArchived("The petition's campaign is archived: it takes no more signatures.")
    organisation_id = None
    if partner is not None:
        partner = _ref(partner)
        organisation_id = await store.organisation_id(conn, partner)
        if organisation_id is None:
            raise PartnerOrganisationNotFound(f"No organisation {partner.text!r}.")
    return ImportTarget(found.id, found.consent_version, organisation_id)


async def resolve_target_for(
    conn: AsyncSession | AsyncConnection, principal: Principal, petition: Ref, partner: Ref | None
) -> ImportTarget:
    """:func:`resolve_target` for a signed-in caller: a partner imports for its own organisation only."""
    target = await resolve_target(conn, petition, policy.import_partner(principal, partner))
    policy.ensure_may_import_for(principal, target.organisation_id)
    return target


def _ref(value: Ref | str) -> Ref:
    # `loom import-signatures` passes the texts it was given.
    return value if isinstance(value, Ref) else Ref.parse(value)


async def _chunks(source: Source) -> AsyncIterable[Chunk]:
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            yield chunk
    elif hasattr(source, "read"):
        while chunk := source.read(1 << 16):
            yield chunk
    else:
        for chunk in source:
            yield chunk


# A parsed CSV row on its way to validation: its line, and the row, or the reason it could not be read.
Parsed = tuple[int, dict[str | None, str | list[str] | None] | None, str | None]
# A validated row: its line, and its record for the COPY, or the reason it is refused.
Checked = tuple[int, store.CopyRecord | None, str | None]
VALIDATION_CHUNK = 2000  # rows handed to a validating process at a time
_AHEAD_PER_PROCESS = 3  # chunks in flight per process: enough to keep it busy, few to bound memory


def validate_rows(
    parsed: list[Parsed], batch: store.Batch, organisation_id: uuid.UUID | None
) -> list[Checked]:
    """Validate and normalise rows (in this process or a validating one: everything here pickles)."""
    record = store.import_row_maker(batch, organisation_id)
    checked: list[Checked] = []
    for line, row, unreadable in parsed:
        if row is None:
            checked.append((line, None, unreadable))
            continue
        try:
            checked.append((line, record(PreparedSignature.of(row_fields(row))), None))
        except ValueError as exc:
            checked.append((line, None, str(exc)))
    return checked


async def import_csv(
    conn: AsyncSession | AsyncConnection,
    petition: Ref | str,
    source: Source,
    *,
    partner: Ref | str | None = None,
    batch_size: int = BATCH_SIZE,
    progress: ProgressCallback | None = None,
    target: ImportTarget | None = None,
    send_confirmation_mail: bool = False,
    processes: Executor | None = None,
    process_count: int = 1,
) -> ImportReport:
    """Import the CSV ``source`` into ``petition`` (id or slug), attributing it to ``partner`` (an
    organisation's id or slug). Writes through ``conn`` without committing: the caller commits.
    ``target`` (from :func:`resolve_target`) skips looking the petition and partner up again.
    ``send_confirmation_mail`` asks for a confirmation link to each row with an email (the rows count
    without it).

    The rows are written by one streaming ``COPY``; ``progress`` is called every ``batch_size`` rows.
    With ``processes`` (an executor of ``process_count`` processes: ``loom import-signatures``) rows are
    validated there, in order, while this process reads and writes. A large import ends with ``ANALYZE``
    (docs/signatures.md, "Imports")."""
    if target is None:
        target = await resolve_target(conn, petition, partner)
    records = _Records()
    reader = csv.DictReader(records)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    errors: list[RowError] = []
    imported = rejected = 0
    header_read = False
    batch = store.Batch(
        channel=Channel.import_,
        petition_id=target.petition_id,
        consent_version=target.consent_version,
        send_confirmation_mail=send_confirmation_mail,
    )
    loop = asyncio.get_running_loop()
    ahead: deque[asyncio.Future[list[Checked]]] = deque()
    chunk_rows = VALIDATION_CHUNK if processes is not None else batch_size
    parsed: list[Parsed] = []

    def report_progress() -> None:
        if progress is not None:
            progress(ImportProgress(lines=records.lines, imported=imported, rejected=rejected))

    def parse() -> None:
        """Move the complete CSV records received so far into ``parsed``."""
        nonlocal header_read
        if not header_read:
            if not records.ready:
                return
            try:
                reader.fieldnames = check_header(reader.fieldnames)
            except csv.Error as exc:
                raise InvalidImportFile(f"The header line cannot be read: {exc}.") from None
            header_read = True
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                parsed.append((reader.line_num, None, f"not valid CSV: {exc}"))
                continue
            parsed.append((reader.line_num, row, None))

    def take(checked: list[Checked]) -> Iterator[store.CopyRecord]:
        nonlocal imported, rejected
        for line, record, reason in checked:
            if record is None:
                rejected += 1
                if len(errors) < MAX_ERROR_DETAILS:
                    errors.append(RowError(line=line, reason=reason or "not valid"))
                continue
            yield record
            imported += 1
            if imported % batch_size == 0:
                report_progress()

    async def validated(final: bool) -> AsyncIterator[store.CopyRecord]:
        """The records of the rows parsed so far, in order; unless ``final``, rows short of a chunk wait."""
        nonlocal parsed
        while len(parsed) >= chunk_rows or (final and parsed):
            chunk, parsed = parsed[:chunk_rows], parsed[chunk_rows:]
            if processes is None:
                for record in take(validate_rows(chunk, batch, target.organisation_id)):
                    yield record
                continue
            ahead.append(loop.run_in_executor(processes, validate_rows, chunk, batch, target.organisation_id))
            while len(ahead) > _AHEAD_PER_PROCESS * process_count:
                for record in take(await ahead.popleft()):
                    yield record
        while final and ahead:
            for record in take(await ahead.popleft()):
                yield record

    async def rows() -> AsyncIterator[store.CopyRecord]:
        try:
            async for chunk in _chunks(source):
                if isinstance(chunk, bytes | bytearray | memoryview):
                    try:
                        chunk = decoder.decode(bytes(chunk))
                    except UnicodeDecodeError:
                        raise InvalidImportFile(
                            f"The file is not UTF-8 text (near line {records.lines + 1}); save it as UTF-8 "
                            "CSV."
                        ) from None
                records.feed(chunk)
                parse()
                async for record in validated(final=False):
                    yield record
            try:
                records.feed(decoder.decode(b"", final=True))
            except UnicodeDecodeError:
                raise InvalidImportFile("The file ends in the middle of a UTF-8 character.") from None
            records.close()
            parse()
            if not header_read:
                raise InvalidImportFile(f"The file is empty; it needs a header line: {', '.join(COLUMNS)}.")
            async for record in validated(final=True):
                yield record
        finally:
            for future in ahead:  # a file found bad: what is still being validated is not wanted
                future.cancel()

    await store.copy_imported(conn, rows())
    report_progress()
    if imported >= ANALYZE_AFTER_ROWS:
        await store.analyze_signatures(conn)
    return ImportReport(
        petition=target.petition_id,
        partner=target.organisation_id,
        imported=imported,
        rejected=rejected,
        errors=errors,
        errors_truncated=rejected > len(errors),
    )
