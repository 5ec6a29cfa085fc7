"""``fb-catalog validate`` through the real command entry point."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import pytest

from facebook_catalog.cli import main

HEADER = "id,title,description,link,image_link,availability,price,brand"


def product(item_id: object, price: str = "25000 IQD") -> str:
    return (
        f"{item_id},Title {item_id},Description {item_id},https://shop.example.com/p/{item_id},"
        f"https://cdn.example.com/{item_id}.jpg,in stock,{price},Miswag"
    )


def write(path: Path, *rows: str, header: str = HEADER) -> str:
    path.write_text("".join(f"{line}\n" for line in (header, *rows)), encoding="utf-8")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    status = main(["validate", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return status, captured.out.splitlines()


def test_all_good_exits_0_with_a_count_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.csv", product(1), product(2, price="25000"))
    status, lines = run(capsys, good)
    assert status == 0
    assert lines == [f"{good}: 2 rows read, 2 good, 0 rejected, 0 duplicates, 0 warnings"]


def test_rejected_rows_exit_1_and_are_printed_with_file_line_field_value_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "bad.csv", product(1), product(2, price="$10"), product(3))
    status, lines = run(capsys, bad)
    assert status == 1
    assert lines == [
        f"{bad} line 3: field 'price' value '$10': currency symbols such as '$' are not accepted; "
        "write the ISO 4217 code instead, e.g. '10 USD' (id '2')",
        f"{bad}: 3 rows read, 2 good, 1 rejected, 0 duplicates, 0 warnings",
    ]


def test_unreadable_file_exits_2_even_when_other_files_have_rejections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "bad.csv", product(1, price="-1"))
    semicolons = write(tmp_path / "semi.csv", header=HEADER.replace(",", ";"))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    missing = str(tmp_path / "missing.csv")
    status, lines = run(capsys, bad, semicolons, str(empty), missing)
    assert status == 2
    assert (
        f"{semicolons}: not read as a feed: the header has one column; the file seems to use ';' as "
        in "\n".join(lines)
    )
    assert f"{empty}: not read as a feed: the file is empty (0 bytes)" in lines
    assert f"{missing}: not read as a feed: the file cannot be opened: No such file or directory" in lines
    assert lines[-1] == (
        "all 4 files: 1 row read, 0 good, 1 rejected, 0 duplicates, 0 warnings; 3 not read as a feed"
    )


def test_warnings_and_duplicates_are_printed_but_do_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write(tmp_path / "a.csv", *(product(n) + ",10" for n in (1, 2, 1)), header=HEADER + ",cost")
    second = tmp_path / "b.csv.gz"
    second.write_bytes(gzip.compress(f"{HEADER}\n{product(2)}\n".encode()))
    status, lines = run(capsys, first, str(second))
    assert status == 0
    assert lines == [
        f"{first} line 1: warning: field 'cost': not a Meta product field: the column's values are not sent",
        f"{first} line 2: duplicate id '1': replaced by line 4, which is the one sent",
        f"{first} line 3: duplicate id '2': replaced by {second} line 2, which is the one sent",
        f"{first}: 3 rows read, 3 good, 0 rejected, 2 duplicates, 1 warning",
        f"{second}: 1 row read, 1 good, 0 rejected, 0 duplicates, 0 warnings",
        "all 2 files: 4 rows read, 4 good, 0 rejected, 2 duplicates, 1 warning",
    ]


def test_currency_and_condition_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = write(tmp_path / "f.csv", product(1, price="9.99") + ",", header=HEADER + ",condition")
    assert run(capsys, feed, "--currency", "usd", "--condition", "Used")[0] == 0


@pytest.mark.parametrize(("option", "value"), [("--currency", "XYZ"), ("--condition", "broken")])
def test_bad_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(tmp_path / "f.csv"), option, value])
    assert exited.value.code == 2
    assert value in capsys.readouterr().err


def test_the_seed_sample_is_rejected_row_by_row(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.hostile import COMMITTED_FILES_DIR

    seed = str(COMMITTED_FILES_DIR / "seed_sample.csv")
    status, lines = run(capsys, seed)
    assert status == 1
    assert (
        f"{seed} line 2: field 'image_link' value 'Cozy Sweater': is not a URL; Meta needs an absolute "
        in ("\n".join(lines))
    )
    assert lines[-1] == f"{seed}: 5 rows read, 0 good, 5 rejected, 0 duplicates, 0 warnings"


def test_standard_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = f"{HEADER}\n{product(1)}\n".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert run(capsys, "-") == (0, ["<stdin>: 1 row read, 1 good, 0 rejected, 0 duplicates, 0 warnings"])


def test_a_terminal_that_cannot_show_arabic_still_gets_the_message(tmp_path: Path) -> None:
    from facebook_catalog.feed import FeedOptions
    from facebook_catalog.feed.validate import validate_files

    feed = write(tmp_path / "ar.csv", product(1, price="25000 د.ع"))
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert validate_files([feed], FeedOptions(), out) == 1
    out.seek(0)
    assert "value '25000 \\u062f.\\u0639'" in out.read()
