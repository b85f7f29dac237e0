"""Reading a published supplier list (CSV, XLSX or JSON) into the Transparency Pledge's fields.

Headers are matched after folding (case, accents, punctuation), against the usual variants of each field
("Factory Name", "Supplier name", "Name of production unit", …); the header row of a spreadsheet may sit
below a title. Each row records what is missing or invalid. Pure functions: no database, no I/O.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pycountry

from services.core.registry.identifiers import fold
from services.core.registry.models import DisclosureFormat, ProductType, WorkerBand


class UnreadableList(ValueError):
    """The file is no supplier list this module can read (the message says why)."""


_NOT_WORD = re.compile(r"[\W_]+")


def _header(text: str) -> str:
    return _NOT_WORD.sub(" ", fold(text)).strip()


# Header variants of each field, folded; the first column matching a field wins.
HEADERS: dict[str, tuple[str, ...]] = {
    "name": (
        "name",
        "facility name",
        "factory name",
        "supplier name",
        "site name",
        "production unit",
        "name of production unit",
        "production unit name",
        "manufacturer name",
        "facility",
        "factory",
        "supplier",
    ),
    "address": (
        "address",
        "facility address",
        "factory address",
        "site address",
        "full address",
        "street address",
        "supplier address",
        "location",
    ),
    "country": ("country", "country code", "country name", "country region", "facility country"),
    "parent_company": (
        "parent company",
        "parent company name",
        "parent",
        "group",
        "owner",
        "owner company",
        "supplier group",
        "business group",
    ),
    "product_types": (
        "product type",
        "product types",
        "type of products",
        "products",
        "product category",
        "product",
        "sector",
    ),
    "worker_band": (
        "number of workers",
        "workers",
        "no of workers",
        "worker count",
        "total workers",
        "number of employees",
        "employees",
        "workforce",
        "worker numbers",
    ),
}
_HEADER_FIELDS = {variant: name for name, variants in HEADERS.items() for variant in variants}
FIELDS = tuple(HEADERS)
REQUIRED = ("name", "country")

_PRODUCTS = {
    "apparel": ProductType.apparel,
    "garment": ProductType.apparel,
    "garments": ProductType.apparel,
    "clothing": ProductType.apparel,
    "textile": ProductType.apparel,
    "sportswear": ProductType.apparel,
    "workwear": ProductType.apparel,
    "footwear": ProductType.footwear,
    "shoes": ProductType.footwear,
    "home textile": ProductType.home_textile,
    "home textiles": ProductType.home_textile,
    "home": ProductType.home_textile,
    "accessories": ProductType.accessories,
    "accessory": ProductType.accessories,
    "bags": ProductType.accessories,
}
_BANDS = (
    (1_000, WorkerBand.up_to_1000),
    (5_000, WorkerBand.from_1001_to_5000),
    (10_000, WorkerBand.from_5001_to_10000),
)
_NUMBER = re.compile(r"\d[\d,. ]*")


@dataclass
class ListRow:
    """A row in the Pledge's fields (``None``: missing), and ``problems``: ``{field, problem}`` with
    problem ``missing`` or ``invalid``."""

    number: int
    name: str | None = None
    address: str | None = None
    country: str | None = None
    parent_company: str | None = None
    product_types: list[str] = field(default_factory=list)
    worker_band: str | None = None
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.name is not None and self.country is not None

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "country": self.country,
            "parent_company": self.parent_company,
            "product_types": self.product_types,
            "worker_band": self.worker_band,
        }


def detect_format(content: bytes, filename: str | None = None) -> DisclosureFormat:
    """XLSX by its ZIP signature, JSON when it starts with ``[`` or ``{``, else CSV (text)."""
    if content.startswith(b"PK\x03\x04"):
        return DisclosureFormat.xlsx
    start = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"[", b"{"):
        return DisclosureFormat.json
    if filename and filename.lower().endswith((".xls", ".pdf", ".docx")):
        raise UnreadableList("Only CSV, XLSX and JSON lists are read; save the list in one of them.")
    return DisclosureFormat.csv


def read_list(content: bytes, fmt: DisclosureFormat, *, max_rows: int) -> list[ListRow]:
    """Every data row of the list, read into the Pledge's fields; ``UnreadableList`` when the file cannot
    be read, has no name column, or has more than ``max_rows`` rows."""
    if fmt == DisclosureFormat.xlsx:
        table: Iterable[list[Any]] = _xlsx(content)
    elif fmt == DisclosureFormat.json:
        table = _json(content)
    else:
        table = _csv(content)
    return _rows(iter(table), max_rows)


class TooManyRows(UnreadableList):
    pass


def _rows(table: Iterator[list[Any]], max_rows: int) -> list[ListRow]:
    columns: dict[str, int] | None = None
    for _, cells in zip(range(20), table, strict=False):  # a title may sit above the header
        found = _columns(cells)
        if "name" in found:
            columns = found
            break
    if columns is None:
        raise UnreadableList(
            "No column of facility names was found in the first 20 rows (a header such as 'Facility "
            "name', 'Factory name' or 'Supplier name')."
        )
    rows: list[ListRow] = []
    for cells in table:
        values = {name: _cell(cells, index) for name, index in columns.items()}
        if not any(values.values()):
            continue  # blank line
        if len(rows) >= max_rows:
            raise TooManyRows(f"The list has more than {max_rows:,} rows.")
        rows.append(_row(len(rows) + 1, values))
    return rows


def _columns(cells: list[Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        if cell is None:
            continue
        name = _HEADER_FIELDS.get(_header(str(cell)))
        if name is not None and name not in found:
            found[name] = index
    return found


def _cell(cells: list[Any], index: int) -> str | None:
    if index >= len(cells) or cells[index] is None:
        return None
    value = cells[index]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = " ".join(str(value).replace("\x00", "").split())
    return text[:2_000] or None


def _row(number: int, values: dict[str, str | None]) -> ListRow:
    row = ListRow(number)

    def problem(name: str, kind: str) -> None:
        row.problems.append({"field": name, "problem": kind})

    for name in FIELDS:
        if not values.get(name):
            problem(name, "missing")
    row.name = values.get("name")
    if row.name is not None:
        row.name = row.name[:300]
    row.address = values.get("address")
    row.parent_company = (values.get("parent_company") or "")[:200] or None
    if values.get("country"):
        row.country = country_code(values["country"] or "")
        if row.country is None:
            problem("country", "invalid")
    if values.get("product_types"):
        row.product_types = product_types(values["product_types"] or "")
        if not row.product_types:
            problem("product_types", "invalid")
    if values.get("worker_band"):
        band = worker_band(values["worker_band"] or "")
        row.worker_band = band.value if band else None
        if band is None:
            problem("worker_band", "invalid")
    return row


def country_code(text: str) -> str | None:
    """ISO 3166-1 alpha-2 of a code (alpha-2 or alpha-3) or an English name, or None."""
    value = text.strip()
    try:
        if len(value) == 2:
            found = pycountry.countries.get(alpha_2=value.upper())
        elif len(value) == 3:
            found = pycountry.countries.get(alpha_3=value.upper())
        else:
            found = pycountry.countries.lookup(value)
    except LookupError:
        return None
    return str(found.alpha_2) if found is not None else None


def product_types(text: str) -> list[str]:
    found: list[str] = []
    for part in re.split(r"[,;/|&+]| and ", fold(text)):
        product = _PRODUCTS.get(_header(part))
        if product is not None and product.value not in found:
            found.append(product.value)
    return found


def worker_band(text: str) -> WorkerBand | None:
    """The Pledge band of a number of workers: a number, a range within one band, a band as written
    (``1001-5000``), or ``> 10000`` / ``10000+`` / ``< 1000``."""
    value = fold(text)
    for band in WorkerBand:
        if value.replace(" ", "") == band.value:
            return band
    numbers = [int(re.sub(r"\D", "", n)) for n in _NUMBER.findall(value) if re.sub(r"\D", "", n)]
    if not numbers or len(numbers) > 2:
        return None
    if len(numbers) == 1 and ("<" in value or "less" in value or "under" in value):
        numbers[0] = max(numbers[0] - 1, 0)
    if len(numbers) == 1 and (">" in value or "+" in value or "more" in value or "over" in value):
        numbers[0] += 1
    bands = {_band(n) for n in numbers}
    return bands.pop() if len(bands) == 1 else None


def _band(workers: int) -> WorkerBand:
    for limit, band in _BANDS:
        if workers <= limit:
            return band
    return WorkerBand.over_10000


def _text(content: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    return content.decode("latin-1")


def _csv(content: bytes) -> Iterator[list[Any]]:
    text = _text(content)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        yield from csv.reader(io.StringIO(text, newline=""), dialect)
    except csv.Error as exc:
        raise UnreadableList(f"The CSV file cannot be read: {exc}.") from exc


def _xlsx(content: bytes) -> Iterator[list[Any]]:
    from openpyxl import load_workbook  # imported when needed: the API's start stays quick

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise UnreadableList("The XLSX file cannot be read.") from exc
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise UnreadableList("The XLSX file has no sheet.")
        for values in sheet.iter_rows(values_only=True):
            yield list(values)
    finally:
        workbook.close()


def _json(content: bytes) -> Iterator[list[Any]]:
    try:
        data = json.loads(_text(content))
    except ValueError as exc:
        raise UnreadableList("The JSON file cannot be read.") from exc
    if isinstance(data, dict):
        lists = [v for k, v in data.items() if isinstance(v, list) and _header(str(k)) in _JSON_KEYS]
        data = lists[0] if lists else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise UnreadableList("A JSON list is an array of objects (or an object with one under 'facilities').")
    keys: list[str] = list(dict.fromkeys(k for item in data for k in item))
    yield keys
    for item in data:
        yield [_scalar(item.get(k)) for k in keys]


_JSON_KEYS = frozenset({"facilities", "suppliers", "factories", "data", "rows", "items", "results"})


def _scalar(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if v is not None)
    if isinstance(value, dict):
        return None
    return value
