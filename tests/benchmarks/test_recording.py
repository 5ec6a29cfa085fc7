"""How a benchmark run is recorded: its block at the head of RESULTS.md, its section in HISTORY.md.

No benchmark runs here and nothing leaves the temporary directory: ``record`` is given a report
built by hand and the paths of a results file and a history file.
"""

from __future__ import annotations

import argparse
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from benchmarks._common import (
    HEAD_END,
    RESULTS_PATH,
    Headline,
    Report,
    github_anchor,
    head_marker,
    record,
)

BENCH_DIR = RESULTS_PATH.parent
# The scripts `make bench` and `make soak` run: each records a block in RESULTS.md.
_MAKEFILE = (BENCH_DIR.parent / "Makefile").read_text()
SCRIPTS = tuple(
    name
    for target in ("bench", "soak")
    for name in re.findall(r"-m benchmarks\.(\w+)", _MAKEFILE.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0])
)
HEADING_RE = re.compile(r"^#+ (.+)$", re.MULTILINE)


def feed_report(speedup: str, day: int) -> Report:
    return Report(
        name="feed_throughput",
        title="Feed throughput and memory",
        tables=["| products | seconds |\n| ---: | ---: |\n| 5,000 | 0.4 |"],
        notes=[f"end to end {speedup}"],
        headlines=[Headline("speed-up end to end", speedup, "≥ 2x", "met")],
        started=datetime(2026, 12, day, 7, 5, tzinfo=timezone.utc),
    )


def arguments(results: Path, history: Path | None = None, no_record: bool = False) -> argparse.Namespace:
    return argparse.Namespace(results=results, history=history, no_record=no_record)


def block(text: str, name: str) -> str:
    start = text.index(head_marker(name))
    return text[start : text.index(HEAD_END, start) + len(HEAD_END)]


def outside(text: str, name: str) -> str:
    return text.replace(block(text, name), "")


@pytest.fixture
def committed(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the committed RESULTS.md and HISTORY.md, side by side as in benchmarks/."""
    results, history = tmp_path / "RESULTS.md", tmp_path / "HISTORY.md"
    shutil.copy(BENCH_DIR / "RESULTS.md", results)
    shutil.copy(BENCH_DIR / "HISTORY.md", history)
    return results, history


def test_a_run_replaces_its_own_block_only_and_appends_its_section_to_the_history(
    committed: tuple[Path, Path],
) -> None:
    results, history = committed
    head_before, history_before = results.read_text(), history.read_text()

    record(feed_report("9.99x", 2), arguments(results))

    head = results.read_text()
    new_block = block(head, "feed_throughput")
    assert "| speed-up end to end | 9.99x | ≥ 2x | met |" in new_block
    assert "Measured 2026-12-02 07:05 UTC" in new_block
    assert "3.11x" not in new_block  # the committed figure it replaced
    assert outside(head, "feed_throughput") == outside(head_before, "feed_throughput")
    for other in SCRIPTS:
        if other != "feed_throughput":
            assert block(head, other) == block(head_before, other)
    assert head.count(head_marker("feed_throughput")) == 1

    after = history.read_text()
    assert after.startswith(history_before)
    added = after[len(history_before) :]
    heading = "Feed throughput and memory — 2026-12-02 07:05 UTC"
    assert added.lstrip("\n").startswith(f"## {heading}\n")
    assert "Machine: " in added
    assert "- end to end 9.99x" in added
    assert f"[full section](HISTORY.md#{github_anchor(heading)})" in new_block


def test_the_second_run_replaces_the_first_runs_block(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    record(feed_report("1.50x", 2), arguments(results))
    record(feed_report("2.50x", 3), arguments(results))

    text = results.read_text()
    assert text.count(head_marker("feed_throughput")) == 1
    assert "2.50x" in text
    assert "1.50x" not in text
    history = (tmp_path / "HISTORY.md").read_text()
    assert history.startswith("# Benchmark history")
    assert history.index("- end to end 1.50x") < history.index("- end to end 2.50x")


def test_a_first_run_creates_both_files_and_a_new_benchmark_gets_a_block_after_the_others(
    tmp_path: Path,
) -> None:
    results, history = tmp_path / "out" / "R.md", tmp_path / "elsewhere" / "H.md"
    record(feed_report("1.50x", 2), arguments(results, history))
    pacing = Report(
        name="rate_limit_pacing",
        title="Rate-limit pacing",
        headlines=[Headline("refusals", "1 / 1 / 1", "do not grow", "met")],
    )
    record(pacing, arguments(results, history))

    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert text.index(head_marker("feed_throughput")) < text.index(head_marker("rate_limit_pacing"))
    assert "(../elsewhere/H.md#feed-throughput-and-memory--2026-12-02-0705-utc)" in text
    assert "## Rate-limit pacing — " in history.read_text()


def test_no_record_prints_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record(feed_report("1.50x", 2), arguments(tmp_path / "RESULTS.md", no_record=True))

    assert "## Feed throughput and memory — 2026-12-02 07:05 UTC" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_an_unclosed_block_is_refused_with_the_file_named_and_the_history_kept(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    broken = "# Benchmark results\n\n<!-- bench:feed_throughput -->\n## Feed throughput and memory\n"
    results.write_text(broken)

    with pytest.raises(
        ValueError, match=r"RESULTS\.md: the block <!-- bench:feed_throughput --> has no closing"
    ):
        record(feed_report("1.50x", 2), arguments(results))
    assert results.read_text() == broken
    assert "- end to end 1.50x" in (tmp_path / "HISTORY.md").read_text()


def test_the_committed_head_has_one_block_per_recording_script_linking_to_a_history_heading() -> None:
    text = (BENCH_DIR / "RESULTS.md").read_text()
    anchors = {github_anchor(h) for h in HEADING_RE.findall((BENCH_DIR / "HISTORY.md").read_text())}
    for script in SCRIPTS:
        assert text.count(head_marker(script)) == 1, script
        links = re.findall(r"\(HISTORY\.md#([^)]+)\)", block(text, script))
        assert len(links) == 1, (script, links)
        assert links[0] in anchors, (script, links)
    assert set(re.findall(r"<!-- bench:(\w+) -->", text)) == set(SCRIPTS)
    every_link = re.findall(r"\(HISTORY\.md#([^)]+)\)", text)
    assert every_link
    assert set(every_link) <= anchors


def feed_results(
    figures: dict[int, tuple[float, float, float, float]],
) -> dict[int, dict[str, dict[str, float]]]:
    """Per size: ours' seconds, peak RSS and RSS after imports, the baseline's seconds."""
    return {
        size: {
            "ours": {"seconds": ours_s, "peak_rss_mb": peak, "rss_after_imports_mb": imports},
            "baseline": {"seconds": base_s},
        }
        for size, (ours_s, peak, imports, base_s) in figures.items()
    }


def test_the_feed_table_weighs_the_proposed_targets_from_100000_products_only() -> None:
    from benchmarks.feed_throughput import _headlines

    recorded = feed_results({5_000: (0.4, 150, 128, 0.5), 1_000_000: (24.0, 164, 128, 74.8)})
    rows = {h.figure: h for h in _headlines([5_000, 1_000_000], recorded, [1.17, 3.11], [0.99, 2.88])}
    assert rows["speed-up end to end (baseline s / ours s)"].verdict == "**missed** (5x); met (proposed)"
    assert rows["speed-up client side (baseline / ours CPU s)"].verdict == "**missed** (5x); met (proposed)"
    assert rows["ours: peak RSS of the whole process"].verdict == "**missed**"
    assert rows["ours: pipeline memory above the imports"].latest.startswith("22 / 36 MiB (+14 ")

    small = _headlines([300], feed_results({300: (0.1, 140, 128, 0.1)}), [1.0], [1.0])
    assert small[1].verdict == "**missed** (5x); n/a (no size of 100,000 or more) (proposed)"
    assert small[-1].latest == "12 MiB"
    slow = _headlines([100_000], feed_results({100_000: (4.0, 140, 70, 7.6)}), [1.9], [2.6])
    assert [h.verdict for h in slow[1:]] == [
        "**missed** (5x); **missed** (proposed)",
        "**missed** (5x); met (proposed)",
        "met",
        "**missed**",
    ]
