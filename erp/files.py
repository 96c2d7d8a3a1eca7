"""Shared helpers for file-drop connectors (Sage 300 CRE estimate import, Vista JC import files).

A file-drop connector "exports" by leaving import files in a folder that the ERP (or an accountant running
the ERP's import) picks up. Two promises matter:

* **Atomic**: an importer never sees half a file. Each file is written to a hidden temp file in the same
  folder (`.<name>.<random>.tmp`, which importers looking for `*.csv` ignore), flushed and fsync'ed, then
  published under its final name in one step and the folder entry fsync'ed. Publishing uses `os.link`
  (fails if the name exists, so a finished file is never replaced); on filesystems without hard links (some
  SMB shares, FAT) it falls back to `os.replace` after checking the name is free.
* **Exactly once**: a retried export (same export id, after a crash or a timeout) writes nothing new and
  returns the same reference. Two guards:
  1. a file that already exists under its final name is never written again;
  2. after all files of an export are published, a small ledger file `.budgetbridge/<export id>.sent`
     (one file name a line) is written. A retry that finds it returns those names at once, even if the
     importer has since moved or archived the files (otherwise a moved file would be dropped again and
     imported twice). Remaining gap: a crash after a data file is published and before the ledger is
     written, followed by someone moving that file away before the retry, would drop it again.

The folder is an administrator's setting, so it must not be turned against the server: `drop_folder` is an
absolute path (checked whenever the connector is built), and when the connection is saved it must be an
existing directory outside the system's own trees (/etc, /usr, /proc, ... -- refused even when the server runs
as root, which could write there) that the server can write: a probe file is written and deleted
(`check_folder`). The folder is never created: a missing one at export time (a network share that is not
mounted) is a retryable ConnectorError rather than a new folder on the local disk.

Failures of the folder itself (missing, a file in its place, no permission, disk full, share unavailable)
raise ConnectorError(retryable=True): the export is retried with backoff and the message is shown to the
approver.

CSV cells and formula injection
-------------------------------
Accountants open these files in Excel. Every CSV we write goes through `csv_record`, which treats each cell
as *text* unless the connector marks it `Raw` (a number or a date it formatted itself):

* a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single
  quote (OWASP, "CSV Injection": https://owasp.org/www-community/attacks/CSV_Injection), so a spreadsheet
  shows it as text instead of evaluating it. Nothing else is changed: text is never trimmed or stripped
  (stripping would turn ``"\\t=1+1"`` into the live formula ``=1+1``);
* a `Raw` cell must be a plain number (``-250.00``, ``12.500``) or a date (``07/01/2025``, ``06052025``); it is
  written bare and never prefixed, so amount columns stay numbers, negatives included. Anything else is a
  programming error (ValueError), never written;
* a text cell containing a comma, a double quote, CR or LF is quoted (RFC 4180, quotes doubled); with
  ``quote_text=True`` every text cell is quoted (the style of Sage's documented example).

Codes the ERP matches on (job, phase / cost code, cost type / category, unit of measure) are not quoted into
something else: the connectors' `validate` refuses a code that begins with one of those characters, because a
code with a quote in front would no longer match the ERP's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from erp.base import (
    POSTING_TOTALS_HELP,
    REQUIRE_POSTING_TOTALS,
    ConnectorConfigError,
    ConnectorError,
    ExportBatch,
    ExportReceipt,
    FormatInvalidError,
    FormatViolation,
    JobSpec,
    flag_option,
    option,
)

LEDGER_DIR = ".budgetbridge"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# ---------------------------------------------------------------- options


def folder_option(settings: dict[str, Any], name: str = "drop_folder") -> Path:
    """The folder's form (no I/O): an absolute path. `check_folder` checks the folder itself when saved."""
    value = option(settings, name)
    if not isinstance(value, (str, os.PathLike)):
        raise ConnectorConfigError(f"the option {name!r} must be a folder path (text), not {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise ConnectorConfigError(f"the option {name!r} must not be blank")
    if "\x00" in text:
        raise ConnectorConfigError(f"the option {name!r} must not contain NUL characters")
    path = Path(text)
    if not path.is_absolute():
        raise ConnectorConfigError(
            f"the option {name!r} must be an absolute path (such as /srv/erp/drop), not {text!r}: a relative path "
            "would depend on the directory the server was started in"
        )
    return path


# Trees of the operating system itself: files dropped there could be read as configuration, code or devices
# (a CSV in /etc/cron.d is a crontab). Refused even when the server could write there (it runs as root).
SYSTEM_TREES = tuple(
    Path(p) for p in ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                      "/sbin", "/sys", "/usr", "/var/lib", "/var/run", "/var/spool")
)
PROBE_PREFIX = ".budgetbridge-probe-"


def _system_tree(path: Path) -> Path | None:
    if path == Path(path.anchor):
        return path  # the root directory itself
    return next((tree for tree in SYSTEM_TREES if path == tree or tree in path.parents), None)


def check_folder(path: Path, name: str = "drop_folder") -> None:
    """When the connection is saved: `path` is an existing directory outside the system's trees that the server
    can write, proven by writing and deleting a probe file. ConnectorConfigError says what is wrong."""
    resolved = Path(os.path.realpath(path))  # a symlink counts as where it points
    tree = _system_tree(resolved) or _system_tree(path)
    if tree is not None:
        raise ConnectorConfigError(
            f"the option {name!r} is refused: {path} is in the system directory {tree}; use a folder of its own "
            "such as /srv/erp/drop"
        )
    if not resolved.exists():
        raise ConnectorConfigError(
            f"the option {name!r} is refused: the folder {path} does not exist (create it first)"
        )
    if not resolved.is_dir():
        raise ConnectorConfigError(f"the option {name!r} is refused: {path} is a file, not a folder")
    probe = resolved / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe\n")
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise ConnectorConfigError(
            f"the option {name!r} is refused: the server cannot write to the folder {path} "
            f"({exc.strerror or type(exc).__name__})"
        ) from None


def encoding_option(settings: dict[str, Any], name: str = "encoding", default: str = "utf-8") -> str:
    import codecs

    value = option(settings, name, required=False, default=default)
    if value in (None, ""):
        return default
    if not isinstance(value, str):
        raise ConnectorConfigError(f"the option {name!r} must be an encoding name such as \"utf-8\" or \"cp1252\"")
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise ConnectorConfigError(f"the option {name!r} names an unknown encoding: {value!r}") from None


# ---------------------------------------------------------------- values


def safe_name(text: str, *, limit: int = 40, fallback: str = "job") -> str:
    """A file-name component: letters, digits, dot, dash and underscore only."""
    cleaned = _UNSAFE.sub("_", text).strip("._")[:limit].strip("._")
    return cleaned or fallback


def amount_text(value: Decimal) -> Raw:
    """Money as a plain decimal with exactly 2 places, a leading minus when negative, never "-0.00".
    An amount that would need rounding is refused: money is never changed on the way out."""
    return decimal_text(value, 2)


def decimal_text(value: Decimal | None, places: int) -> Raw:
    """A number with exactly `places` decimals (None is zero). A value that would need rounding is refused
    (ConnectorError): nothing is rounded on the way out; `validate` reports such values before."""
    if value is None:
        value = Decimal(0)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ConnectorError(f"value {value!r} is not an exact decimal")
    quantized = value.quantize(Decimal(1).scaleb(-places))
    if quantized != value:
        raise ConnectorError(f"{value} has more than {places} decimal places")
    return Raw(_plain(quantized))


def _plain(value: Decimal) -> str:
    if value.is_zero():
        value = value.copy_abs()
    return format(value, "f")


# ---------------------------------------------------------------- checks shared by the connectors' validate


def decimal_places(value: Decimal) -> int:
    """Fraction digits a value needs (trailing zeros do not count: 12.50 needs 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def integer_digits(value: Decimal) -> int:
    """Digits before the decimal point (0.5 has 0)."""
    whole = abs(value).to_integral_value(rounding=ROUND_DOWN)
    return 0 if whole.is_zero() else len(str(whole))


def fits_number(value: Decimal, *, integer: int, places: int) -> str | None:
    """None when `value` fits a signed numeric field of `integer` digits before and `places` after the point,
    else why not (for a message)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return f"{value!r} is not an exact decimal"
    if decimal_places(value) > places:
        return f"{_plain(value)} has more than {places} decimal places"
    if integer_digits(value) > integer:
        return f"{_plain(value)} has more than {integer} digits before the decimal point"
    return None


def code_problem(code: str | None, size: int) -> str | None:
    """None when `code` can be written as an identifier of at most `size` characters, else why not: blank,
    too long, a control character (tab, line break) inside, or a first character a spreadsheet reads as a
    formula (a code cannot be quoted without changing it)."""
    if code is None or not code.strip():
        return "is blank"
    if len(code) > size:
        return f"is {len(code)} characters long; at most {size} fit"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in code):
        return "contains a tab, a line break or another control character"
    if code[0] in FORMULA_TRIGGERS:
        return f"begins with {code[0]!r}, which a spreadsheet reads as a formula"
    return None


def text_size_problem(text: str, size: int) -> str | None:
    """None when free text fits `size` characters *as written* (with the protective quote, if any)."""
    written = neutralise(text)
    if len(written) <= size:
        return None
    guard = " with the quote that keeps a spreadsheet from reading it as a formula" if written != text else ""
    return f"is {len(written)} characters long{guard}; at most {size} fit"


def file_name_safe(text: str) -> bool:
    """True when `text` is carried into a file name unchanged (letters, digits, dot, dash, underscore)."""
    return bool(text) and _UNSAFE.search(text) is None


# ---------------------------------------------------------------- CSV writing


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_RAW = re.compile(r"-?[0-9]+(?:\.[0-9]+)?|[0-9]{2}/[0-9]{2}/[0-9]{4}")
_NEEDS_QUOTES = re.compile(r'[",\r\n]')


class Raw(str):
    """A cell written bare: a plain number or a date the connector formatted itself. Never neutralised, so
    numbers stay numbers in a spreadsheet; anything that is not a number or a date is refused."""

    __slots__ = ()

    def __new__(cls, value: str) -> Raw:
        if not isinstance(value, str) or _RAW.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not a plain number or date; write it as text")
        return super().__new__(cls, value)


def neutralise(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading =, +, -, @, tab or CR gets a single quote in front
    (OWASP CSV injection guidance). Nothing is trimmed or stripped."""
    return "'" + text if text[:1] in FORMULA_TRIGGERS else text


def csv_cell(value: str, *, quote_text: bool = False) -> str:
    if isinstance(value, Raw):
        return str(value)
    text = neutralise(value)
    if quote_text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_record(cells: Sequence[str], *, quote_text: bool = False) -> str:
    """One CSV line ending in CRLF: text cells neutralised and quoted as needed, Raw cells bare."""
    return ",".join(csv_cell(cell, quote_text=quote_text) for cell in cells) + "\r\n"


def csv_document(rows: Sequence[Sequence[str]], *, quote_text: bool = False) -> str:
    return "".join(csv_record(row, quote_text=quote_text) for row in rows)


def refuse_sub_jobs(batch: ExportBatch, target: str) -> None:
    """Defence in depth: the workflow already blocks sub jobs for connectors whose capabilities say so."""
    with_sub_job = [item for item in batch.items if item.sub_job]
    if with_sub_job:
        first = with_sub_job[0]
        raise ConnectorError(
            f"{target} does not support sub jobs (line {first.cost_code}/{first.cost_type} has sub job "
            f"{first.sub_job!r})",
            retryable=False,
        )


# ---------------------------------------------------------------- the folder


@dataclass(frozen=True)
class DropFile:
    name: str
    content: str


class DropFolder:
    def __init__(self, path: Path, *, encoding: str = "utf-8") -> None:
        self.path = path
        self.encoding = encoding

    def drop(self, export_id: str, files: Sequence[DropFile]) -> list[str]:
        """Publish the files of one export exactly once; returns their names (from the ledger on a retry)."""
        try:
            self._ensure()
            sent = self._ledger_names(export_id)
            if sent is not None:
                return sent
            for file in files:
                self._write_once(file.name, file.content.encode(self.encoding, errors="replace"))
            self._record(export_id, [file.name for file in files])
        except ConnectorError:
            raise
        except OSError as exc:
            raise ConnectorError(
                f"cannot write to the drop folder {self.path}: {exc.strerror or exc}", retryable=True
            ) from exc
        return [file.name for file in files]

    def sent(self, export_id: str) -> list[str] | None:
        """The names recorded for an export that was already dropped, else None (read-only)."""
        try:
            return self._ledger_names(export_id)
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise ConnectorError(
                f"cannot read the drop folder {self.path}: {exc.strerror or exc}", retryable=True
            ) from exc

    def ensure(self) -> None:
        try:
            self._ensure()
        except OSError as exc:
            raise ConnectorError(
                f"cannot use the drop folder {self.path}: {exc.strerror or exc}", retryable=True
            ) from exc

    def _ensure(self) -> None:
        if not self.path.exists():  # never created here: an unmounted share must not become a local folder
            raise ConnectorError(
                f"the drop folder {self.path} does not exist (is its share mounted?)", retryable=True
            )
        if not self.path.is_dir():
            raise ConnectorError(f"the drop folder {self.path} is a file, not a folder", retryable=True)
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise ConnectorError(f"the drop folder {self.path} is not writable", retryable=True)

    # -- ledger

    def _ledger_file(self, export_id: str) -> Path:
        return self.path / LEDGER_DIR / f"{safe_name(export_id, limit=100, fallback='export')}.sent"

    def _ledger_names(self, export_id: str) -> list[str] | None:
        try:
            text = self._ledger_file(export_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return [line for line in text.splitlines() if line]

    def _record(self, export_id: str, names: list[str]) -> None:
        ledger = self.path / LEDGER_DIR
        ledger.mkdir(exist_ok=True)
        content = "".join(f"{name}\n" for name in names).encode("utf-8")
        _publish(ledger, self._ledger_file(export_id).name, content)

    # -- data files

    def _write_once(self, name: str, data: bytes) -> bool:
        """True when written now, False when a file of that name was already there."""
        if (self.path / name).exists():
            return False
        return _publish(self.path, name, data)


def _publish(directory: Path, name: str, data: bytes) -> bool:
    target = directory / name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    tmp: Path | None = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):  # mkstemp makes 0600; the ERP's importer must be able to read it
            os.chmod(tmp_name, 0o644)
        try:
            os.link(tmp_name, target)  # atomic and never replaces an existing file
        except FileExistsError:
            return False
        except OSError:  # no hard links on this filesystem
            if target.exists():
                return False
            os.replace(tmp_name, target)
            tmp = None
        _fsync_directory(directory)
        return True
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def file_stem(batch: ExportBatch) -> str:
    """`<job>_<export id>`: unique per request and stable across retries (the exactly-once key)."""
    return f"{safe_name(batch.job_number, limit=30)}_{safe_name(batch.export_id, limit=60, fallback='export')}"


DROP_FOLDER_HELP = "the folder the import files are written to (required)"
FILE_POSTING_TOTALS_HELP = POSTING_TOTALS_HELP + " (default true: nothing else ties a dropped file to its posting)"


def posting_totals_option(settings: dict[str, Any]) -> bool:
    """`require_posting_totals`, true unless the company turns it off: nothing but the accountant's word ties a
    dropped file to its posting, so the confirmation carries the posting journal's entry count and total."""
    return flag_option(settings, REQUIRE_POSTING_TOTALS, True)


class DropFolderConnector:
    """What every file-drop target shares: the job is set up in the ERP itself, posting is invisible from a
    folder (an integrator or an ERP admin confirms it, with the posting journal's control totals unless the
    option `require_posting_totals=false`), and an export is the request's files dropped atomically once."""

    folder: DropFolder
    detects_posting = False
    requires_posting_totals = True
    target = "the ERP"  # names the target in messages

    def render(self, batch: ExportBatch) -> list[DropFile]:
        raise NotImplementedError

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        raise NotImplementedError

    async def check_settings(self) -> None:
        await asyncio.to_thread(check_folder, self.folder.path)

    async def sync_job(self, job: JobSpec) -> str:
        return job.number

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        """Validate, render, then drop: a batch that does not fit the format is refused before any write. An
        export already dropped (a retry after a crash) returns its files at once, even if the connection's
        options changed since and it would no longer validate: it was written, so it is not refused here. (The
        worker runs the format check before it calls export: in that rare case -- a crash between the drop
        and the commit, and the options changed before the retry -- the export fails with the violations, and
        retryExport once the options are corrected returns the files already dropped; nothing is written
        twice.)"""
        sent = await asyncio.to_thread(self.folder.sent, batch.export_id)
        if sent is not None:
            return ExportReceipt(erp_reference="; ".join(sent))
        violations = self.validate(batch)
        if violations:
            raise FormatInvalidError(self.target, violations)
        files = self.render(batch)
        if not files:
            return ExportReceipt(erp_reference=None)
        names = await asyncio.to_thread(self.folder.drop, batch.export_id, files)
        return ExportReceipt(erp_reference="; ".join(names))

    async def posted(self, export_id: str) -> bool | None:
        return None

    async def mark_posted(self, export_id: str) -> None:
        return None
