"""The report, the napari reader and the log-file progress lines, walked as an imaging facility user (session 47)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap


def test_a_log_files_progress_bar_writes_no_line_for_a_stall_and_another_at_once_after_it(tmp_path):
    """stderr a file: tqdm's monitor thread redrew a bar stalled for longer than its interval (a training's validation)
    with the count unchanged, and the next update wrote the next count at once ('262step' then '263step' in the same
    second, around every validation). Intervals shortened; a subprocess, so that the monitor thread is its own."""
    script = textwrap.dedent("""
        import io, sys, time
        import plexloc.progress as P
        from tqdm import tqdm
        tqdm.monitor_interval = 0.05  # the monitor looks every 0.05 s (10 s by default)
        P.LOG_DELAY_S, P.LOG_INTERVAL_S = 0.0, 0.5

        class Log(io.StringIO):
            def isatty(self):
                return False

        sys.stderr = log = Log()
        bar = P.progress(None, total=None, desc="train", unit="step")
        for _ in range(30):
            bar.update(1)
            time.sleep(0.02)
        time.sleep(1.2)  # a validation: the bar stalls for twice its interval
        for _ in range(5):
            bar.update(1)
            time.sleep(0.02)
        bar.close()
        sys.__stdout__.write(log.getvalue())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True).stdout
    counts = [int(m) for m in re.findall(r"train: (\d+)step", out)]
    # a line at the start (no delay here), one when the interval has passed at an update and one at the end; the
    # stall's line (30, the count before it) is gone, and the line after the stall is 31, the first step after it
    assert counts[0] == 0 and counts[-1] == 35, out
    assert 30 not in counts, out
    assert 31 in counts, out
    assert counts == sorted(counts), out
