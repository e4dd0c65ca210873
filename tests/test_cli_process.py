"""The command as a process among others: pipes, signals, read-only and left-over files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .builders import file_version, simple, write_events

TBEXPORT = [sys.executable, "-c", "from tbexport.cli import main; main()"]


@pytest.fixture
def many_tags(tmp_path: Path) -> Path:
    run = tmp_path / "version_0"
    events = [file_version(), *(simple(f"tag_{i:04d}", 1, float(i)) for i in range(3000))]
    write_events(run / "events.out.tfevents.1.host", events)
    return run


def test_list_into_a_pipe_closed_early_exits_quietly(many_tags: Path) -> None:
    shell = subprocess.run(
        f"{' '.join(map(repr, TBEXPORT))} {str(many_tags)!r} --list | head -n 1;"
        " echo status=${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.stdout.splitlines() == ["version_0  (1 event file, 3000 tags)", "status=0"]
    assert shell.stderr == ""


def stalled_export(run: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    """An export whose CSV writer stalls once its temporary file exists."""
    script = (
        "import time, sys\n"
        "from tbexport.writing import csv as w\n"
        "def slow(frame, path, options=None):\n"
        "    path.write_text('partial')\n"
        "    time.sleep(60)\n"
        "w.write = slow\n"
        "from tbexport.cli import main\n"
        f"sys.argv = ['tbexport', {str(run)!r}, '-o', {str(out)!r}, '-q', *{list(extra)!r}]\n"
        "main()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    pattern = f".{out.name}.tbexport-*.tmp"
    while not list(out.parent.glob(pattern)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(out.parent.glob(pattern)), "the export never started writing"
    return child


def test_ctrl_c_ends_an_export_with_130_and_leaves_nothing(many_tags: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text("an earlier export")
    child = stalled_export(many_tags, out)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=60) == 130
    assert child.stderr is not None and child.stderr.read() == b""  # no "Aborted!", no trace
    assert out.read_text() == "an earlier export"
    assert list(tmp_path.glob(".out.csv.*")) == []


def test_sigterm_ends_an_export_with_143_and_leaves_nothing(
    many_tags: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("an earlier export")
    child = stalled_export(many_tags, out)
    child.send_signal(signal.SIGTERM)  # (kill, a batch scheduler's time limit)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert out.read_text() == "an earlier export"
    assert list(tmp_path.glob(".out.csv.*")) == []


def test_a_killed_exports_temporary_is_removed_by_the_next(many_tags: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    child = stalled_export(many_tags, out)
    [left] = tmp_path.glob(".out.csv.tbexport-*.tmp")
    child.kill()  # SIGKILL: no handler runs, the temporary stays
    child.wait(timeout=60)
    assert left.exists()
    # a live process's temporary of the same output is not touched
    alive = tmp_path / f".out.csv.tbexport-{left.name.split('-')[1]}-{os.getpid()}-x.tmp"
    alive.write_text("being written")
    done = subprocess.run([*TBEXPORT, str(many_tags), "-o", str(out), "-q"], timeout=60)
    assert done.returncode == 0
    assert not left.exists()
    assert alive.exists()
    assert out.read_text().startswith("run,tag,step,wall_time,value\n")


def test_a_read_only_output_is_refused_unless_forced(many_tags: Path, tmp_path: Path) -> None:
    out = tmp_path / "ro.xlsx"
    out.write_text("an earlier export")
    out.chmod(0o444)
    refused = subprocess.run(
        [*TBEXPORT, str(many_tags), "-o", str(out), "-q"], capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert refused.stderr == (f"Error: cannot write {out}: it is read-only (--force replaces it)\n")
    assert out.read_text() == "an earlier export"
    assert stat.S_IMODE(out.stat().st_mode) == 0o444
    forced = subprocess.run([*TBEXPORT, str(many_tags), "-o", str(out), "-q", "--force"])
    assert forced.returncode == 0
    assert out.read_bytes().startswith(b"PK")


def test_a_read_only_script_keeps_the_mat_as_it_was(many_tags: Path, tmp_path: Path) -> None:
    mat, script = tmp_path / "v.mat", tmp_path / "v.m"
    mat.write_text("an earlier .mat")
    script.write_text("% an earlier script")
    script.chmod(0o444)
    result = subprocess.run(
        [*TBEXPORT, str(many_tags), "-o", str(mat), "--matlab-script", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot write {script}: it is read-only")
    assert mat.read_text() == "an earlier .mat"


@pytest.fixture
def open_tree() -> Iterator[Path]:
    """A directory any user may enter (pytest's own are the owner's alone), so that the
    unreadable directories below can be tested by a process without root's rights."""
    top = Path(tempfile.mkdtemp(prefix="tbexport-"))
    top.chmod(0o777)
    yield top
    for path in top.rglob("*"):
        with contextlib.suppress(OSError):
            path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(top)


def run_without_root_rights(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as an ordinary user: root reads unreadable files. (Python and the
    modules are loaded first, as root: they may lie where that user cannot read.)"""
    drop = (
        "import os, sys, yaml, tbexport.cli, tbexport.writing.csv\n"
        "if os.getuid() == 0:\n"
        "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        f"sys.argv = ['tbexport', *{list(args)!r}]\n"
        "tbexport.cli.main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", drop], capture_output=True, text=True, timeout=60, cwd="/"
    )


def test_an_unreadable_run_directory_is_reported(open_tree: Path) -> None:
    for run in ("a", "b"):
        write_events(open_tree / "logs" / run / "events.out.tfevents.1", [simple("x", 1, 1.0)])
    (open_tree / "logs" / "a" / "hparams.yaml").write_text("lr: 0.1\n")
    (open_tree / "logs" / "a" / "hparams.yaml").chmod(0)
    (open_tree / "logs" / "b").chmod(0)
    for directory in (open_tree, open_tree / "logs", open_tree / "logs" / "a"):
        directory.chmod(0o777)
    logs, out = open_tree / "logs", open_tree / "out.csv"
    result = run_without_root_rights(str(logs), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: {logs / 'b'}: cannot be listed (Permission denied), skipped",
        f"warning: {logs / 'a' / 'hparams.yaml'}: cannot be read (Permission denied), skipped",
        f"wrote {out}: 1 run, 1 tag, 1 point from 1 event file; skipped 2 unreadable files",
    ]
    out.unlink()
    strict = run_without_root_rights(str(logs), "-o", str(out), "--strict")
    assert strict.returncode == 1
    assert strict.stderr == f"Error: {logs / 'b'}: cannot be listed (Permission denied)\n"
    assert not out.exists()


def test_ctrl_c_while_the_command_starts_prints_no_traceback() -> None:
    # as the console script starts: argv[0] is the command, the package's imports run,
    # and a Ctrl-C comes before the command's own handler is set
    script = (
        "import sys; sys.argv[0] = '/usr/bin/tbexport'\n"
        "import os, signal, time, tbexport\n"
        "os.kill(os.getpid(), signal.SIGINT); time.sleep(10)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGINT  # (a shell reports 130)
    assert done.stderr == ""


def test_an_output_that_is_one_of_the_inputs_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "v0"
    run.mkdir()
    metrics = run / "metrics.csv"
    metrics.write_text("step,loss\n0,1.5\n1,0.5\n")
    result = subprocess.run(
        [*TBEXPORT, str(run), "-o", str(metrics), "-q"], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr == f"Error: cannot write {metrics}: it is one of the files read\n"
    assert metrics.read_text() == "step,loss\n0,1.5\n1,0.5\n"
    linked = tmp_path / "same.csv"  # the same file by another name
    linked.hardlink_to(metrics)
    again = subprocess.run([*TBEXPORT, str(run), "-o", str(linked), "-q"], capture_output=True)
    assert again.returncode == 1 and metrics.read_text().startswith("step,loss")


def test_a_script_that_cannot_be_written_leaves_the_mat_alone(
    many_tags: Path, tmp_path: Path
) -> None:
    mat = tmp_path / "v.mat"
    mat.write_text("an earlier .mat")
    (tmp_path / "v.m").mkdir()
    result = subprocess.run(
        [*TBEXPORT, str(many_tags), "-o", str(mat), "--matlab-script", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == f"Error: cannot write {tmp_path / 'v.m'}: it is a directory\n"
    assert mat.read_text() == "an earlier .mat"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.m", "v.mat", "version_0"]
