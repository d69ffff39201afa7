"""Fault-injection tier: each scenario disturbs a running stack and records how it came back.

Run alone with `pytest tests/faults`. Every scenario adds one row to `fault_report`; the rows are
printed as a table at the end of the run and written to `artifacts/faults.md`, the source of
the figures in docs/reliability.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ARTIFACT = Path(__file__).parents[2] / "artifacts" / "faults.md"


@dataclass
class FaultRow:
    scenario: str
    recovered_s: float | None  # seconds from the fault's end to normal service again
    expected: int  # outputs of an undisturbed run of the same input
    stored: int  # distinct outputs after the disturbed run
    duplicated: int  # outputs stored more than once (same content under a second id)
    skips: dict[str, int] = field(default_factory=dict)  # counted skips, by reason
    note: str = ""

    def cells(self) -> list[str]:
        rec = "-" if self.recovered_s is None else f"{self.recovered_s:.1f}"
        skips = ", ".join(f"{k}={v}" for k, v in sorted(self.skips.items())) or "0"
        return [
            self.scenario,
            rec,
            str(self.expected),
            str(self.stored),
            str(self.duplicated),
            skips,
            self.note,
        ]


HEADER = ["scenario", "recovered in (s)", "expected", "stored", "duplicated", "skips counted", "note"]
_rows: list[FaultRow] = []


@pytest.fixture
def fault_report() -> Iterator[list[FaultRow]]:
    """Append the scenario's FaultRow here once its assertions passed."""
    mine: list[FaultRow] = []
    yield mine
    _rows.extend(mine)


def markdown_table(rows: list[FaultRow]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _rows:
        return
    table = markdown_table(sorted(_rows, key=lambda r: r.scenario))
    terminalreporter.section("fault injection: recovery")
    terminalreporter.write(table)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(table)
