"""The docs run as written (issue 17): README.md and docs/getting-started.md, every command and
code block in order, on a fresh home directory, with the clone's `.venv` not on PATH — the demo
started the way the README says, keys made, the Python and Node examples run against it, the
demo stopped with Ctrl-C. A block marked illustrative is reported as skipped, with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from .docs_runner import Reader, blocks

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "docs/getting-started.md")

pytestmark = pytest.mark.slow


def run_pages(reader: Reader, pages: tuple[str, ...]) -> tuple[int, list[int | None]]:
    """Every block of `pages` not marked skip, in order; then Ctrl-C for what still runs. Returns
    how many blocks ran and the background processes' exit codes."""
    ran = 0
    try:
        for page in pages:
            for block in blocks(ROOT / page):
                if block.skip_reason is None:
                    reader.run(block)
                    ran += 1
    finally:
        codes = reader.stop()
    return ran, codes


def test_the_first_hour_runs_as_written(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "node_modules").symlink_to(ROOT / "test" / "node" / "node_modules")  # `npm install openai`
    reader = Reader(clone=ROOT, home=home, work=work)
    ran, codes = run_pages(reader, PAGES)
    assert ran >= 8, f"only {ran} blocks ran"
    assert reader.key is not None, "the demo never printed its key"
    assert codes and all(code == 0 for code in codes), f"exit codes after Ctrl-C: {codes}"


@pytest.mark.parametrize(
    "page,index",
    [(page, n) for page in PAGES for n, block in enumerate(blocks(ROOT / page)) if block.skip_reason],
)
def test_illustrative_blocks_are_named(page: str, index: int) -> None:
    """Each block the runner does not run shows up in the test report, with why."""
    reason = blocks(ROOT / page)[index].skip_reason
    assert reason, "a skipped block says why"
    pytest.skip(f"{page}, block {index + 1}: {reason}")


RUNBOOKS = ("docs/runbooks/troubleshooting.md", "docs/runbooks/upgrade.md")


@pytest.mark.parametrize("page", RUNBOOKS)
def test_runbook_commands_run_as_written(page: str, tmp_path: Path) -> None:
    """A runbook's commands show what it says they show, on the scratch gateway it starts."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    ran, codes = run_pages(Reader(clone=ROOT, home=home, work=work), (page,))
    assert ran >= 4, f"only {ran} blocks ran"
    assert codes and all(code == 0 for code in codes), f"exit codes after Ctrl-C: {codes}"
