"""Lead import: CSV/XLSX lists -> cleaned, deduplicated leads (``marcador import``).

Public API: :func:`import_file`, :class:`ImportReport`, :class:`ColumnMapping`,
:class:`CleaningOptions` and the typed errors. Submodules: ``reader`` (files -> text rows),
``mapping`` (headers -> fields), ``cleaning`` (pure rules), ``service`` (persistence),
``report`` (per-row report, summary, progress) and ``cli``.
"""

from dialer.importing.cleaning import CleaningOptions, Reason
from dialer.importing.errors import CampaignNotFound, ImportFileError, LeadImportError, MappingError
from dialer.importing.mapping import ColumnMapping, LeadField
from dialer.importing.report import ImportReport, RowResult, RowStatus
from dialer.importing.service import import_file, resolve_campaign

__all__ = [
    "CampaignNotFound",
    "CleaningOptions",
    "ColumnMapping",
    "ImportFileError",
    "ImportReport",
    "LeadField",
    "LeadImportError",
    "MappingError",
    "Reason",
    "RowResult",
    "RowStatus",
    "import_file",
    "resolve_campaign",
]
