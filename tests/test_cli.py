"""The command line, driven through click's CliRunner: exit codes and exact messages."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import scipy.io
from click.testing import CliRunner

import tbexport
from tbexport.cli import cli
from tbexport.reading import runs

from .builders import simple, write_events


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "logs" / "version_0"
    write_events(
        run / "events.out.tfevents.1",
        [simple("train_loss", s, 1 / (s + 1)) for s in range(50)]
        + [simple("val_loss", s, 2.0) for s in range(0, 50, 10)],
    )
    return run


def invoke(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_export_xlsx_with_summary(run_dir: Path, tmp_path: Path) -> None:
    result = invoke(run_dir, "-o", tmp_path / "losses.xlsx")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        f"wrote {tmp_path / 'losses.xlsx'}: 1 run, 2 tags, 55 points from 1 event file"
    )
    assert openpyxl.load_workbook(tmp_path / "losses.xlsx").sheetnames == [
        "index",
        "summary",
        "train_loss",
        "val_loss",
    ]


def test_the_input_is_walked_once_and_the_bar_gets_its_total(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tqdm import tqdm

    from tbexport import cli as cli_module
    from tbexport.reading import discover

    walks: list[str] = []
    real_list = discover.list_directory

    def listing(path: str) -> Any:
        walks.append(path)
        return real_list(path)

    bars: list[Any] = []
    disable: list[Any] = []

    class Bar(tqdm):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            disable.append(kwargs.get("disable"))
            super().__init__(*args, **{**kwargs, "disable": False})  # (as on a terminal)
            bars.append(self)

    monkeypatch.setattr(discover, "list_directory", listing)  # (the seam to storage)
    monkeypatch.setattr(cli_module, "tqdm", Bar)
    assert invoke(run_dir.parent, "-o", tmp_path / "out.csv").exit_code == 0
    # each directory listed once: the bar's total came from the reading's walk
    assert sorted(walks) == [str(run_dir.parent), str(run_dir)]
    size = os.path.getsize(run_dir / "events.out.tfevents.1")
    assert len(bars) == 1 and bars[0].total == bars[0].n == size
    # tqdm decides, and draws no bar where stderr is no terminal (a log file)
    assert disable == [None] and tqdm(disable=None, file=io.StringIO()).disable


def test_format_flag_names_output_after_input(run_dir: Path, tmp_path: Path) -> None:
    result = invoke(run_dir, "--mat", "--quiet")
    assert result.exit_code == 0 and result.output == ""
    mat = scipy.io.loadmat(tmp_path / "version_0.mat", simplify_cells=True)
    assert mat["val_loss"]["step"].tolist() == [0, 10, 20, 30, 40]
    assert invoke(run_dir, "--csv", "-q").exit_code == 0
    assert (tmp_path / "version_0.csv").read_text().startswith("run,tag,step,wall_time,value\n")
    assert invoke(run_dir, "-q").exit_code == 0
    assert (tmp_path / "version_0.xlsx").exists()


def test_python_dash_m(run_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tbexport", str(run_dir), "--list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "train_loss" in done.stdout


def test_list(run_dir: Path) -> None:
    result = invoke(run_dir, "--list")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "version_0  (1 event file, 2 tags)",
        "  train_loss         50 points  steps 0..49",
        "  val_loss            5 points  steps 0..40",
    ]
    assert [p.name for p in Path.cwd().iterdir()] == ["logs"]  # --list writes nothing


def test_list_with_a_tag_filter_leaves_out_runs_without_those_tags(tmp_path: Path) -> None:
    write_events(tmp_path / "a" / "events.out.tfevents.1", [simple("val_loss", 0, 1.0)])
    write_events(tmp_path / "b" / "events.out.tfevents.1", [simple("train_loss", 0, 1.0)])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "metrics.csv").write_text("step,val_loss\n0,2.0\n")
    result = invoke(tmp_path, "--list", "-t", "val_*")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "a  (1 event file, 1 tag)",
        "  val_loss          1 point   steps 0..0",
        "c  (CSVLogger metrics.csv, 1 tag)",
        "  val_loss          1 point   steps 0..0",
    ]


def test_an_unusable_hparams_yaml_is_reported_not_dropped_silently(
    run_dir: Path, tmp_path: Path
) -> None:
    (run_dir / "hparams.yaml").write_text("lr: [unclosed\n")
    result = invoke(run_dir, "-o", tmp_path / "o.csv", "-q")
    assert result.exit_code == 0
    yaml_file = run_dir / "hparams.yaml"
    assert result.stderr == (
        f"note: {yaml_file}: not valid YAML (line 2), hyperparameters left out\n"
    )
    named = invoke(run_dir, "--csv", "--name-by", "hparam:lr")  # the note says why
    assert named.exit_code == 2
    assert named.stderr.endswith(
        "Error: no run has the hyperparameter 'lr'; known: none "
        f"({yaml_file}: not valid YAML (line 2), hyperparameters left out)\n"
    )
    (run_dir / "hparams.yaml").write_text("- 1\n- 2\n")
    with pytest.warns(UserWarning, match="not a mapping of names to values, left out"):
        tbexport.read_scalars(run_dir)
    with pytest.warns(UserWarning, match="not a mapping of names to values, left out"):
        tbexport.read_hparams(run_dir)


def test_list_refuses_options_given_at_their_defaults(run_dir: Path) -> None:
    result = invoke(run_dir, "--list", "--layout", "long", "--name-by", "dir", "--time", "unix")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: --list writes nothing: --layout, --name-by, --time would be ignored\n"
    )


def test_an_unwritable_plot_dir_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = invoke(run_dir, "--plot-dir", tmp_path / "file" / "figures", "-q")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot write {tmp_path / 'file' / 'figures'}: ")


def test_tags_filter(run_dir: Path, tmp_path: Path) -> None:
    result = invoke(run_dir, "-o", tmp_path / "v.csv", "--tags", "val_*", "-q")
    assert result.exit_code == 0
    lines = (tmp_path / "v.csv").read_text().splitlines()
    assert len(lines) == 6 and all(",val_loss," in line for line in lines[1:])


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nope")
    assert result.exit_code == 2
    assert f"Path '{tmp_path / 'nope'}' does not exist." in result.stderr


def test_directory_without_event_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke(tmp_path / "empty")
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: no TensorBoard event files (*tfevents*) or CSVLogger metrics.csv under "
        f"{tmp_path / 'empty'}\n"
    )


def test_tag_filter_matching_nothing(run_dir: Path) -> None:
    result = invoke(run_dir, "--tags", "acc*")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no scalar tag matches 'acc*'; tags include: val_loss, train_loss\n"
    )


def test_unknown_suffix(run_dir: Path, tmp_path: Path) -> None:
    result = invoke(run_dir, "-o", tmp_path / "out.json")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: unknown output suffix '.json'; known formats: .xlsx, .mat, .csv, .md, .tex, "
        ".tfevents (a directory)\n"
    )
    assert not (tmp_path / "out.json").exists()


def test_conflicting_format_flag(run_dir: Path, tmp_path: Path) -> None:
    result = invoke(run_dir, "-o", tmp_path / "out.csv", "--mat")
    assert result.exit_code == 2
    assert "--mat conflicts with output suffix '.csv'" in result.stderr


def test_two_format_flags_are_a_usage_error(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(run_dir, "--mat", "--csv")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: choose one format, not --mat and --csv\n")
    assert [p.name for p in tmp_path.iterdir()] == ["logs"]  # nothing written


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--xlsx", "--wide"], "--wide is for .csv output, not .xlsx"),
        (["--csv", "--charts"], "--charts is for .xlsx output, not .csv"),
        (["--csv", "--matlab-script"], "--matlab-script is for .mat output, not .csv"),
        (
            ["--csv", "--wide", "--layout", "wide"],
            "choose one wide table: --wide puts tags side by side, --layout wide runs",
        ),
        # an option is judged by being given, not by its value
        (
            ["--csv", "--wide", "--layout", "long"],
            "choose one wide table: --wide puts tags side by side, --layout wide runs",
        ),
        (["--plot", "p.png", "--charts"], "--charts shapes a table, and only figures are written"),
        (
            ["--plot", "p.png", "--layout", "long", "--time", "unix"],
            "--layout, --time shape a table, and only figures are written",
        ),
        (
            ["--csv", "--layout", "wide", "--time", "datetime"],
            "a wide table has no time column: --time needs the long layout",
        ),
        (
            ["--csv", "--layout", "wide", "--time", "unix"],
            "a wide table has no time column: --time needs the long layout",
        ),
        (
            ["--csv", "--reduce", "mean", "--name-by", "hparam:lr"],
            "--name-by labels runs, and --reduce puts statistics in their place",
        ),
        (
            ["--csv", "--reduce", "mean", "--name-by", "dir"],
            "--name-by labels runs, and --reduce puts statistics in their place",
        ),
        (
            ["-o", "x.xlsx", "--x", "step"],
            "--x shapes figures: give --plot or --plot-dir",
        ),
        (["--list", "--name-by", "hparam:lr"], "--list writes nothing: --name-by would be ignored"),
        (["--csv", "--log-y"], "--log-y shapes figures: give --plot or --plot-dir"),
        (
            ["--csv", "--x", "relative", "--log-y"],
            "--x, --log-y shape figures: give --plot or --plot-dir",
        ),
        (
            ["--list", "--csv", "--smooth", "0.5"],
            "--list writes nothing: --csv, --smooth would be ignored",
        ),
        (
            ["--mat", "--layout", "wide", "--keep-duplicates"],
            "a wide table holds one point per step: --keep-duplicates needs the long layout",
        ),
        (["--csv", "--dpi", "90"], "--dpi shapes figures: give --plot or --plot-dir"),
        (
            ["--csv", "--figsize", "8,6", "--cols", "2"],
            "--figsize, --cols shape figures: give --plot or --plot-dir",
        ),
        (["--plot", "p.png", "--band", "minmax"], "--band shades the statistics of --reduce"),
        (
            ["--plot", "p.png", "--plot-format", "svg"],
            "--plot-format is the format of --plot-dir's figures (--plot takes its file's suffix)",
        ),
        (
            ["--plot", "p.png", "--figsize", "8x6"],
            "Invalid value for '--figsize': give W,H in inches (e.g. 8,6), not '8x6'",
        ),
    ],
)
def test_options_the_format_would_ignore_are_errors(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(run_dir, *options)
    assert result.exit_code == 2  # a usage error
    assert result.stderr.endswith(f"\n\nError: {message}\n")
    assert [p.name for p in tmp_path.iterdir()] == ["logs"]  # nothing written


def test_not_an_event_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(300))
    result = invoke(junk)
    assert result.exit_code == 1
    assert result.stderr == f"Error: not a TensorBoard event file: {junk}\n"


def test_short_text_file_is_not_an_event_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hi\n")  # shorter than a record header
    result = invoke(notes)
    assert result.exit_code == 1
    assert result.stderr == f"Error: not a TensorBoard event file: {notes}\n"


def test_unwritable_output_directory(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir.xlsx"
    result = invoke(run_dir, "-o", target)
    assert result.exit_code == 1
    assert (
        result.stderr == f"Error: cannot write {target}: directory {target.parent} does not exist\n"
    )


def test_failure_never_clobbers_an_earlier_output(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "keep.csv"
    target.write_text("precious\n")

    def explode(*args: object, **kwargs: object) -> None:
        Path(args[1]).write_text("half-writ")  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(tbexport.FORMATS, ".csv", explode)
    result = invoke(run_dir, "-o", target)
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot write {target}: No space left on device\n"
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv", "logs"]  # no temp file left


def test_an_unreadable_event_file_is_reported_and_export_goes_on(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = run_dir / "events.out.tfevents.9"
    broken.symlink_to(tmp_path / "gone")  # found by the walk, but nothing to open
    result = invoke(run_dir, "-o", tmp_path / "x.csv")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        f"warning: {broken}: cannot be read (No such file or directory), skipped"
    )
    assert result.stderr.rstrip().endswith("; skipped 1 unreadable file")
    assert len((tmp_path / "x.csv").read_text().splitlines()) > 1  # the other file's points
    strict = invoke(run_dir, "-o", tmp_path / "y.csv", "--strict")
    assert strict.exit_code == 1
    assert strict.stderr == f"Error: cannot read {broken}: No such file or directory\n"
    # a file named to read is an error even without --strict (root reads past chmod 000)
    named = run_dir / "events.out.tfevents.1"
    real_read = runs.read_event_file

    def denied(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(path) == str(named):
            raise PermissionError(13, "Permission denied", str(named))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(runs, "read_event_file", denied)
    alone = invoke(named, "-o", tmp_path / "z.csv")
    assert alone.exit_code == 1
    assert alone.stderr == f"Error: cannot read {named}: Permission denied\n"
    assert not (tmp_path / "z.csv").exists()


def test_corruption_is_reported_and_export_goes_on(run_dir: Path, tmp_path: Path) -> None:
    path = run_dir / "events.out.tfevents.1"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0x01
    path.write_bytes(bytes(blob))
    result = invoke(run_dir, "-o", tmp_path / "x.csv")
    assert result.exit_code == 0
    assert re.search(
        rf"^warning: {re.escape(str(path))}: (corrupt record|invalid record header) "
        r"at byte \d+, skipped \d+ bytes$",
        result.stderr,
        re.M,
    )
    assert re.search(r"; skipped 1 damaged stretch \(\d+ bytes\)$", result.stderr, re.M)
    strict = invoke(run_dir, "-o", tmp_path / "y.csv", "--strict")
    assert strict.exit_code == 1
    assert strict.stderr.startswith(f"Error: {path}: ")
    assert not (tmp_path / "y.csv").exists()


def test_help_and_version() -> None:
    help_text = invoke("--help").output
    assert (
        "Examples:" in help_text and "tbexport lightning_logs/version_0 -o losses.xlsx" in help_text
    )
    assert invoke("-h").output == help_text
    assert invoke("--version").output == f"tbexport, version {tbexport.__version__}\n"


def test_every_option_named_in_a_message_has_its_flag() -> None:
    import re

    from tbexport.cli import FLAGS

    package = Path(tbexport.__file__).parent
    code = "\n".join(p.read_text() for p in package.rglob("*.py"))
    named = set(re.findall(r"""option\(["']([a-z_]+)["']""", code))
    assert named and named <= set(FLAGS), named - set(FLAGS)
    flags = {opt for param in cli.params for opt in param.opts}
    assert set(FLAGS.values()) <= flags, set(FLAGS.values()) - flags


def test_the_api_names_its_parameters(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(tbexport.InvalidOptionError) as raised:
        tbexport.export(run_dir, tmp_path / "x.xlsx", x="step")
    assert str(raised.value) == "x shapes figures: give plot or plot_dir"
    with pytest.raises(tbexport.InvalidOptionError) as raised:
        tbexport.export(run_dir, tmp_path / "x.csv", wide=True, layout="long")
    assert str(raised.value) == (
        "choose one wide table: wide puts tags side by side, layout='wide' runs"
    )


def test_tag_patterns_whatever_the_case(run_dir: Path, tmp_path: Path) -> None:
    upper = invoke(run_dir, "-t", "VAL_*", "--csv")
    assert upper.exit_code == 1
    assert upper.stderr == (
        "Error: no scalar tag matches 'VAL_*' (but with --ignore-case some do); tags include: "
        "val_loss, train_loss\n"
    )
    out = tmp_path / "v.csv"
    ignoring = invoke(run_dir, "-t", "VAL_*", "--ignore-case", "-o", out, "-q")
    assert ignoring.exit_code == 0
    assert out.read_text().splitlines()[1] == "version_0,val_loss,0,1000.0,2.0"


def test_a_pattern_matching_nothing_among_others_is_a_note(run_dir: Path, tmp_path: Path) -> None:
    result = invoke(run_dir, "-t", "val_*", "-t", "tset_*", "-o", tmp_path / "v.csv", "-q")
    assert result.exit_code == 0
    assert result.stderr == "note: the tag pattern 'tset_*' matches no tag (the others do)\n"
    with pytest.warns(UserWarning, match="'tset_\\*' matches no tag"):
        tbexport.read_scalars(run_dir, tags=["val_*", "tset_*"])


def test_names_cannot_act_on_the_terminal(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "run\x1b[2J"
    write_events(run / "events.out.tfevents.1", [simple("x\x1b]0;pwned\x07\u202e", 1, 1.0)])
    listed = invoke(tmp_path / "logs", "--list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [
        "run\\x1b[2J  (1 event file, 1 tag)",
        "  x\\x1b]0;pwned\\x07\\u202e          1 point   steps 1..1",
    ]
    missing = invoke(tmp_path / "logs", "-t", "y\x1b[31m", "--csv")
    assert "\x1b" not in missing.stderr
    assert missing.stderr.startswith("Error: no scalar tag matches 'y\\x1b[31m'")


def test_figure_options(run_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "f.png"
    result = invoke(run_dir, "--plot", png, "--figsize", "8,6", "--dpi", "100", "--cols", "1")
    assert result.exit_code == 0, result.output
    with Image.open(png) as image:
        assert image.size == (800, 600)
    figures = tmp_path / "figures"
    result = invoke(run_dir, "--plot-dir", figures, "--plot-format", "svg", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.suffix for p in figures.iterdir()) == [".svg", ".svg"]


def test_format_given_for_a_suffix_of_no_format(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.v2"
    result = invoke(run_dir, "-o", out, "-f", "csv", "-q")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("run,tag,step,wall_time,value\n")
