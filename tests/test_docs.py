"""Claims in README.md that the code cannot check for itself, kept honest."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def paragraph_with(text: str, needle: str) -> str:
    (found,) = [p for p in text.split("\n\n") if needle in p]
    return " ".join(found.split())


def test_bit_identical_mpi_claim_names_where_it_holds():
    claim = paragraph_with(README.read_text(), "bit-identical for any")
    assert "under `mpiexec`" in claim
    assert "A plain `evoplastic train --resume` of an MPI run (no launcher)" in claim
    assert "continues on another trajectory unless `es.member_chunk` was set" in claim
    assert "docs/mpi.md#resume" in claim
