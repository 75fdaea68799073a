"""The report folder's swap on small sets, in-process (bandit_bench.reporting.writer.replace_set):
what is replaced, what is carried over, and what a killed writer left that the next one
finishes or rolls back. The kills themselves are in tests/reliability/test_report_set.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bandit_bench.reporting import writer
from bandit_bench.reporting.writer import recover_report_dir, replace_set


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_the_set_is_replaced_and_every_other_entry_carried_over_as_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(writer, "_exchange", lambda a, b: False)  # as without renameat2
    folder = tmp_path / "rep[1]"  # a name with glob characters: the leftovers are still found
    folder.mkdir()
    (folder / "summary.csv").write_text("old\n", encoding="utf-8")
    (folder / "README.md").write_text("notes\n", encoding="utf-8")
    (folder / "plots").mkdir()
    (folder / "plots" / "extra.txt").write_text("kept\n", encoding="utf-8")
    (folder / ".summary.csv.abc123.tmp").write_text("half", encoding="utf-8")  # an old writer's
    os.symlink("README.md", folder / "link.md")
    (folder / ".gitignore").write_text("*.png\n", encoding="utf-8")  # a dotfile is a user's file too
    os.symlink("extra.txt", folder / "plots" / "inner.md")
    os.symlink("plots", folder / "plots-link")
    os.chmod(folder, 0o750)
    readme = (folder / "README.md").stat().st_ino
    extra = (folder / "plots" / "extra.txt").stat().st_ino
    paths = replace_set(folder, {"summary.csv": "new\n", "report.md": "# r\n"})
    assert paths == {"summary.csv": folder / "summary.csv", "report.md": folder / "report.md"}
    assert _tree(folder) == {
        ".gitignore": "*.png\n",
        "README.md": "notes\n",
        "link.md": "notes\n",
        "plots/extra.txt": "kept\n",
        "plots/inner.md": "kept\n",
        "report.md": "# r\n",
        "summary.csv": "new\n",
    }
    assert (folder / "README.md").stat().st_ino == readme  # a hard link: no data copied
    assert (folder / "plots" / "extra.txt").stat().st_ino == extra  # inside a folder too
    assert os.readlink(folder / "link.md") == "README.md"  # a link stays a link
    assert os.readlink(folder / "plots" / "inner.md") == "extra.txt"
    assert os.readlink(folder / "plots-link") == "plots"
    assert oct(folder.stat().st_mode & 0o777) == oct(0o750)
    assert _siblings(folder) == []
    # A first write makes the folder (and its parents).
    fresh = tmp_path / "a" / "b" / "c"
    replace_set(fresh, {"x": "1"})
    assert _tree(fresh) == {"x": "1"} and _siblings(fresh) == []


def _leftovers(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "rep[1]"
    for name in names:
        (tmp_path / name.replace("TARGET", ".rep[1]")).mkdir()
        (tmp_path / name.replace("TARGET", ".rep[1]") / "summary.csv").write_text(name, encoding="utf-8")
    return folder


def test_a_writer_killed_between_the_two_renames_is_rolled_forward(tmp_path: Path) -> None:
    """The old set was moved aside only once the new one was complete: the new one wins."""
    folder = _leftovers(tmp_path, "TARGET.old-7-aa", "TARGET.new-7-aa")
    recover_report_dir(folder)
    assert _tree(folder) == {"summary.csv": "TARGET.new-7-aa"}
    assert _siblings(folder) == []


def test_an_old_set_moved_aside_alone_is_put_back(tmp_path: Path) -> None:
    folder = _leftovers(tmp_path, "TARGET.old-7-aa", "TARGET.new-8-bb")  # another writer's unfinished new set
    recover_report_dir(folder)
    assert _tree(folder) == {"summary.csv": "TARGET.old-7-aa"}
    assert _siblings(folder) == []


def test_leftovers_beside_a_complete_folder_are_removed_and_it_is_kept(tmp_path: Path) -> None:
    folder = _leftovers(tmp_path, "TARGET.old-7-aa", "TARGET.new-8-bb")
    folder.mkdir()
    (folder / "summary.csv").write_text("current", encoding="utf-8")
    (tmp_path / ".other.new-9-cc").mkdir()  # another folder's: not touched
    recover_report_dir(folder)
    assert _tree(folder) == {"summary.csv": "current"}
    assert _siblings(folder) == []
    assert (tmp_path / ".other.new-9-cc").is_dir()
    recover_report_dir(tmp_path / "missing" / "reports")  # no parent: nothing to do, no error
    assert not (tmp_path / "missing").exists()


def test_a_file_where_the_folder_should_be_is_refused_and_left(tmp_path: Path) -> None:
    clash = tmp_path / "reports"
    clash.write_text("not a folder\n", encoding="utf-8")
    with pytest.raises(NotADirectoryError) as err:
        replace_set(clash, {"x": "1"})
    assert (err.value.errno, err.value.strerror, err.value.filename) == (
        20,
        "exists and is not a folder",
        str(clash),
    )
    assert clash.read_text(encoding="utf-8") == "not a folder\n" and _siblings(clash) == []


def test_a_folder_whose_name_holds_new_or_old_is_recovered_by_its_own_token(tmp_path: Path) -> None:
    folder = tmp_path / "run.new-1"
    for name in (".run.new-1.old-7-aa", ".run.new-1.new-7-aa"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.csv").write_text(name, encoding="utf-8")
    recover_report_dir(folder)
    assert _tree(folder) == {"summary.csv": ".run.new-1.new-7-aa"}  # rolled forward, not back
    assert _siblings(folder) == []
