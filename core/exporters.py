"""The exporter contract: turns a note into a downloadable file."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class ExportDocument:
    title: str
    markdown: str
    metadata: dict[str, str] = field(default_factory=dict)


class Exporter(ABC):
    exporter_id: ClassVar[str]
    name: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]

    @property
    def id(self) -> str:
        return self.exporter_id

    @abstractmethod
    async def export(self, document: ExportDocument) -> bytes:
        """Render the document; raise ``multinotes.errors.Invalid`` for content it cannot take."""
