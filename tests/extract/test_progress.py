"""Progress in a log is plain lines at an interval; diagnostics go to stderr, results to stdout."""
import subprocess
import sys
import time

import numpy as np

from astar.extract.outcomes import VideoOutcome
from astar.extract.progress import LineProgress
from astar.extract.reporter import RunReporter
from tests.videos import write_video


def test_line_progress_prints_plain_lines_with_counts_rate_and_postfix(capsys):
    with LineProgress(range(4), desc="epoch 1/2", unit="batch", interval=0) as bar:
        for _ in bar:
            bar.set_postfix(loss="1.234")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("epoch 1/2: 1/4 batch (25%), ") and lines[0].endswith("; loss=1.234")
    assert lines[-1].startswith("epoch 1/2: 4/4 batch (100%)")
    assert capsys.readouterr().out == ""


def test_line_progress_stays_quiet_between_intervals_and_reports_at_close(capsys):
    bar = LineProgress(total=1000, desc="extract", unit="video", interval=3600)
    for _ in range(1000):
        bar.update()
    assert capsys.readouterr().err == ""
    bar.close()
    bar.close()
    assert capsys.readouterr().err.count("extract: 1000/1000 video (100%)") == 1


def test_a_command_logged_to_a_file_writes_no_carriage_returns(tmp_path):
    video = write_video(tmp_path / "v.mp4", np.zeros((10, 32, 32, 3), np.uint8), fps=10)
    bad = tmp_path / "bad.mp4"
    bad.write_text("no video")
    store = tmp_path / "f.zarr"
    extract = subprocess.run([sys.executable, "-m", "astar.extract.cli", str(video), str(bad), "--out", str(store),
                              "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert extract.returncode == 3, extract.stderr
    assert "\r" not in extract.stderr and "extract: 2/2 video (100%)" in extract.stderr
    assert f"failed: {bad}" in extract.stderr and "failed:" not in extract.stdout  # diagnostics on stderr
    assert "1 done, 0 skipped, 1 failed" in extract.stdout
    verify = subprocess.run([sys.executable, "-m", "astar.extract.verify", str(store)],
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stderr
    assert "\r" not in verify.stderr and "verify: 1/1 video (100%)" in verify.stderr
    assert verify.stdout == "1 complete videos checked; 0 damaged marked for re-extraction\n"


def test_a_run_reporter_keeps_the_totals_of_every_outcome_and_says_each_failure_and_note(capsys):
    skipped = VideoOutcome("s", "/v/s.mp4", "skipped")
    bar = LineProgress(total=3, desc="extract", unit="video", interval=3600)
    reporter = RunReporter(bar, time.perf_counter(), [skipped])
    for outcome in (VideoOutcome("a", "/v/a.mp4", "done", frames=30), VideoOutcome("b", "/v/b.mp4", "failed", error="x"),
                    VideoOutcome("c", "/v/c.mp4", "done", frames=12, note="timestamps ignored")):
        reporter.report(outcome)
    assert (reporter.frames, reporter.failed, bar.n) == (42, 1, 3) and reporter.frames_per_s > 0
    assert capsys.readouterr().err.splitlines() == ["failed: /v/b.mp4: x", "note: /v/c.mp4: timestamps ignored"]
