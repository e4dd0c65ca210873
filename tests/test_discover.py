"""Run discovery: which directories are runs, what they are called, in which order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tbexport import find_runs, load_scalars
from tbexport.exceptions import InvalidOptionError, NoEventFilesError, PathNotFoundError

from .builders import file_version, simple, write_events


def _event_file(directory: Path, suffix: str = "0") -> Path:
    return write_events(
        directory / f"events.out.tfevents.1.host.{suffix}", [file_version(), simple("x", 0, 1.0)]
    )


def test_runs_are_named_relative_to_the_root_in_natural_order(tmp_path: Path) -> None:
    root = tmp_path / "lightning_logs"
    for version in (10, 2, 1):
        _event_file(root / f"version_{version}")
    _event_file(root / "sweep" / "lr_0.1" / "version_0")
    (root / "empty").mkdir()
    (root / "version_2" / "checkpoints").mkdir()
    names = [run.name for run in find_runs(root)]
    assert names == ["sweep/lr_0.1/version_0", "version_1", "version_2", "version_10"]
    assert [run.name for run in find_runs(f"{root}/")] == names  # a trailing slash changes nothing


def test_a_run_directory_given_itself_is_named_after_it(tmp_path: Path) -> None:
    first = _event_file(tmp_path / "version_3", "1")
    second = _event_file(tmp_path / "version_3", "0")
    (run,) = find_runs(tmp_path / "version_3")
    assert run.name == "version_3"
    assert run.files == (second, first)  # file-name order
    (single,) = find_runs(first)
    assert (single.name, single.files) == ("version_3", (first,))


def test_a_directory_with_event_files_and_subruns_is_a_run_too(tmp_path: Path) -> None:
    _event_file(tmp_path / "exp")
    _event_file(tmp_path / "exp" / "loss_train")  # add_scalars writes a run per subdirectory
    assert [run.name for run in find_runs(tmp_path / "exp")] == ["exp", "loss_train"]


def test_csv_logger_directory_is_a_run(tmp_path: Path) -> None:
    run = tmp_path / "csv" / "version_0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("step,loss\n0,1.0\n")
    (found,) = find_runs(tmp_path / "csv")
    assert found.name == "version_0"
    assert found.files == (run / "metrics.csv",)


def test_links_to_directories_are_entered_once(tmp_path: Path) -> None:
    # as TensorBoard's walk: a folder of links picks runs from elsewhere
    sweep = tmp_path / "sweep"
    for version in range(3):
        _event_file(sweep / f"version_{version}")
    picked = tmp_path / "picked"
    picked.mkdir()
    (picked / "best").symlink_to(sweep / "version_2")
    (picked / "base").symlink_to(sweep / "version_0")
    runs = find_runs(picked)
    assert [(run.name, [f.parent for f in run.files]) for run in runs] == [
        ("base", [picked / "base"]),
        ("best", [picked / "best"]),
    ]
    assert load_scalars(picked).frame["run"].astype(str).tolist() == ["base", "best"]
    # a directory reached by its own path and by a link is found once, by its path
    (sweep / "version_1" / "alias").symlink_to(sweep / "version_0")
    (sweep / "a_link").symlink_to(sweep / "version_2")  # sorts before version_2
    assert [run.name for run in find_runs(sweep)] == ["version_0", "version_1", "version_2"]
    # cycles end
    (sweep / "version_0" / "loop").symlink_to(sweep)
    (sweep / "version_0" / "self").symlink_to(sweep / "version_0")
    assert [run.name for run in find_runs(sweep)] == ["version_0", "version_1", "version_2"]
    # a link given as the root is followed
    (tmp_path / "root_link").symlink_to(sweep)
    assert len(find_runs(tmp_path / "root_link")) == 3


def test_event_files_of_one_directory_given_one_by_one_are_one_run(tmp_path: Path) -> None:
    first = write_events(tmp_path / "r" / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    second = write_events(tmp_path / "r" / "events.out.tfevents.2", [simple("loss", 1, 2.0)])
    (run,) = find_runs([second, first])  # as a shell glob gives them, in any order
    assert (run.name, run.files) == ("r", (first, second))
    assert load_scalars([second, first]).frame["value"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("jobs", [1, 4])
def test_which_link_names_a_directory_does_not_depend_on_listing_order(
    tmp_path: Path, jobs: int
) -> None:
    _event_file(tmp_path / "elsewhere" / "run")
    root = tmp_path / "picked"
    for name in ("zeta", "alpha", "mid", "beta", "omega"):  # listed in no set order
        (root / name).mkdir(parents=True)
        (root / name / "best").symlink_to(tmp_path / "elsewhere" / "run")
    assert [run.name for run in find_runs(root, jobs=jobs)] == ["alpha/best"]
    # cycles end, listed on one thread or several
    (root / "alpha" / "loop").symlink_to(root)
    assert [run.name for run in find_runs(root, jobs=jobs)] == ["alpha/best"]


def test_two_roots_with_the_same_run_names_fall_back_to_the_given_paths(tmp_path: Path) -> None:
    _event_file(tmp_path / "a" / "version_0")
    _event_file(tmp_path / "b" / "version_0")
    names = [run.name for run in find_runs([tmp_path / "a", tmp_path / "b"])]
    assert names == [
        (tmp_path / "a" / "version_0").as_posix(),
        (tmp_path / "b" / "version_0").as_posix(),
    ]


def test_a_root_run_holding_a_run_of_its_own_name_falls_back_to_the_given_paths(
    tmp_path: Path,
) -> None:
    root = tmp_path / "exp"
    write_events(root / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    write_events(root / "exp" / "events.out.tfevents.1", [simple("loss", 0, 2.0)])
    names = [run.name for run in find_runs(root)]
    assert names == [root.as_posix(), (root / "exp").as_posix()]
    frame = load_scalars(root).frame
    assert frame["run"].astype(str).tolist() == names and frame["value"].tolist() == [1.0, 2.0]


def test_missing_paths_and_empty_trees_are_errors(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match="path does not exist"):
        find_runs(tmp_path / "nope")
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    with pytest.raises(NoEventFilesError, match="no TensorBoard event files"):
        find_runs(tmp_path / "empty")


def test_natural_order_is_total() -> None:
    from tbexport.reading.discover import natural_key

    names = ["b", "a10", "a2", "a1", "a01", "a", "a1b", "version_10", "version_2"]
    expected = ["a", "a01", "a1", "a1b", "a2", "a10", "b", "version_2", "version_10"]
    assert sorted(names, key=natural_key) == expected
    # names equal but for leading zeros never depend on the order they came in
    assert sorted(reversed(names), key=natural_key) == expected


def test_digits_int_refuses_are_text_in_the_natural_order(tmp_path: Path) -> None:
    """ "²" is a digit to str.isdigit() but no number to int(); "٣" is both."""
    from tbexport.reading.discover import natural_key

    names = ["x1²", "x10", "x2", "x٣", "x1"]
    assert sorted(names, key=natural_key) == ["x1", "x1²", "x2", "x٣", "x10"]
    events = [simple(tag, 0, float(i)) for i, tag in enumerate(["x1²", "x2"])]
    write_events(tmp_path / "run1²" / "events.out.tfevents.1", events)
    frame = load_scalars(tmp_path).frame
    assert list(frame["tag"].cat.categories) == ["x1²", "x2"]
    assert frame["run"].tolist() == ["run1²", "run1²"]


def test_the_walk_notes_which_runs_have_an_hparams_yaml(tmp_path: Path) -> None:
    from tbexport.model import Run
    from tbexport.reading.hparams import read_hparams_yaml

    for name in ("with", "without"):
        write_events(tmp_path / name / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    (tmp_path / "with" / "hparams.yaml").write_text("lr: 0.5\n")
    runs = {run.name: run for run in find_runs(tmp_path)}
    assert runs["with"].hparams_yaml is True and runs["without"].hparams_yaml is False
    given = find_runs(tmp_path / "with" / "events.out.tfevents.1")[0]
    assert given.hparams_yaml is None  # a file given: its directory was not listed
    assert read_hparams_yaml(tmp_path / "with", given.hparams_yaml) == {"lr": 0.5}
    assert read_hparams_yaml(tmp_path / "with", False) == {}  # taken from the listing
    (tmp_path / "with" / "hparams.yaml").unlink()  # gone since the listing
    assert read_hparams_yaml(tmp_path / "with", True) == {}
    (tmp_path / "with" / "hparams.yaml").write_text("lr: 0.25\n")
    assert load_scalars(tmp_path).hparams == {"with": {"lr": 0.25}}
    assert Run("r", ()).hparams_yaml is None  # runs built by hand: looked up when read


def _tricky_tree(root: Path) -> Path:
    """Runs nested in runs, links of every kind, a CSVLogger run, a non-UTF-8 name."""
    _event_file(root / "version_0")
    _event_file(root / "version_0" / "nested" / "deeper")
    _event_file(root / "a-x")
    (root / "csv").mkdir()
    (root / "csv" / "metrics.csv").write_text("step,loss\n0,1.0\n")
    (root / "version_0" / "dir_link").symlink_to(root / "a-x")  # a-x found by its own path
    (root / "linked_file").mkdir()
    (root / "linked_file" / "events.out.tfevents.9").symlink_to(
        next((root / "a-x").iterdir())
    )  # a link to a file is a file
    (root / "broken").mkdir()
    (root / "broken" / "events.out.tfevents.8").symlink_to(root / "gone")  # still a file
    (root / "empty_dir").mkdir()
    odd = os.fsdecode(b"run_\xff")  # not UTF-8: surrogate-escaped, as os.listdir gives it
    _event_file(root / odd)
    return root


def test_a_listing_tells_files_directories_and_links_apart(tmp_path: Path) -> None:
    from tbexport.reading import source

    root = _tricky_tree(tmp_path)
    listing = source.list_directory(str(root))
    assert listing is not None
    files, below, linked, identity = listing
    assert files == [] and linked == []
    assert sorted(below) == sorted(
        ["a-x", "broken", "csv", "empty_dir", "linked_file", os.fsdecode(b"run_\xff"), "version_0"]
    )
    status = os.stat(root)
    assert identity == (status.st_dev, status.st_ino)
    version_0 = source.list_directory(str(root / "version_0"))
    assert version_0 is not None
    assert (sorted(version_0[0]), version_0[1], version_0[2]) == (
        ["events.out.tfevents.1.host.0"],
        ["nested"],
        ["dir_link"],  # a link to a directory
    )
    assert source.list_directory(str(root / "linked_file"))[:3] == (  # type: ignore[index]
        ["events.out.tfevents.9"],  # a link to a file is a file
        [],
        [],
    )
    assert source.list_directory(str(root / "broken"))[:3] == (  # type: ignore[index]
        ["events.out.tfevents.8"],  # a broken link too
        [],
        [],
    )
    assert source.list_directory(str(root / "gone")) is None
    assert source.list_directory(str(root / "csv" / "metrics.csv")) is None  # not a directory


def test_listing_on_threads_gives_the_same_runs_in_order(tmp_path: Path) -> None:
    from tbexport.reading import discover

    for n in range(150):  # more directories than threads
        directory = tmp_path / f"version_{n}"
        if n % 7:  # every seventh one no run
            directory.mkdir()
            for name in (f"events.out.tfevents.{n}", "hparams.yaml", *(["sub"] * (n % 2))):
                (directory / name).mkdir() if name == "sub" else (directory / name).touch()
    found = discover.find_runs(tmp_path, jobs=4)
    assert [run.name for run in found] == [f"version_{n}" for n in range(150) if n % 7]
    assert found[2].files == (tmp_path / "version_3" / "events.out.tfevents.3",)
    assert found[2].hparams_yaml is True
    assert found == discover.find_runs(tmp_path, jobs=1)
    assert found == discover.find_runs(tmp_path, jobs=2**40)  # (more than can start: capped)
    with pytest.raises(InvalidOptionError, match=r"^jobs must be 1 or more, not 0$"):
        discover.find_runs(tmp_path, jobs=0)


@pytest.mark.parametrize("jobs", [1, 4])
def test_the_walk_finds_runs_of_every_shape(tmp_path: Path, jobs: int) -> None:
    root = _tricky_tree(tmp_path)
    walked = find_runs(root, jobs=jobs)
    assert [run.name for run in walked] == [
        "a-x",
        "broken",
        "csv",
        "linked_file",
        "run_\\xff",  # (named with the byte escaped; its files keep their real path)
        "version_0",
        "version_0/nested/deeper",
    ]
    odd = walked[4].files[0]
    assert os.fsencode(odd).endswith(b"/run_\xff/events.out.tfevents.1.host.0")
    assert walked[3].files == (root / "linked_file" / "events.out.tfevents.9",)
