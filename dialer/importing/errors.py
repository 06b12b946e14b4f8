"""Typed errors of the lead importer.

Every error carries a Spanish message (shown to the call-center user first) and an English
one; ``str(err)`` is ``"<es> / <en>"``. They derive from the domain's :class:`DomainError`, so
the API can map them like any other domain error.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dialer.domain.errors import DomainError

__all__ = [
    "CampaignNotFound",
    "ImportFileError",
    "ImportLimitExceeded",
    "ImportTooLarge",
    "LeadImportError",
    "MappingError",
]


class LeadImportError(DomainError):
    """Base of the importer's errors."""

    code: ClassVar[str] = "import_error"

    def __init__(self, message_es: str, message_en: str, **details: Any) -> None:
        super().__init__(f"{message_es} / {message_en}", **details)
        self.message_es = message_es
        self.message_en = message_en


class ImportFileError(LeadImportError):
    """The file cannot be read as a lead list: unknown format, empty, no header, unreadable."""

    code = "import_file_error"


class ImportTooLarge(ImportFileError):
    """The file unpacks to more than the limits allow (size, ratio): a decompression bomb.

    ``details["limit"]`` names the setting (``MARCADOR_IMPORTS__...``).
    """

    code = "import_too_large"


class ImportLimitExceeded(ImportFileError):
    """The file declares or holds more rows, columns or cell text than the limits allow."""

    code = "import_limit_exceeded"


class MappingError(LeadImportError):
    """The column mapping is malformed, or the file lacks a column the import needs."""

    code = "import_mapping_error"


class CampaignNotFound(LeadImportError):
    """The campaign named on the command line (or in the API call) does not exist."""

    code = "campaign_not_found"
