"""Scratch directories of killed processes are removed by the next user of the prefix."""
import os
import signal
import subprocess
import sys
import time

from hwlib.scratch import scratch_dir, sweep

HOLD = """
import sys, time
from hwlib.scratch import scratch_dir
with scratch_dir("agn-test-", sys.argv[1]) as d:
    (d / "partial.c").write_text("int x;")
    print(d, flush=True)
    time.sleep(60)
"""


def test_a_killed_processs_scratch_dir_is_removed_by_the_next_one(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    left = tmp_path / os.path.basename(proc.stdout.readline().strip())
    assert left.is_dir() and str(proc.pid) in left.name
    with scratch_dir("agn-test-", tmp_path) as mine:  # the holder still runs: kept
        assert left.is_dir() and mine.is_dir()
    assert not mine.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert left.is_dir()  # a kill skips TemporaryDirectory's cleanup
    with scratch_dir("agn-test-", tmp_path):
        assert not left.exists()


def test_sweep_keeps_live_processes_and_other_prefixes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    time.sleep(0.05)
    (tmp_path / f"agn-deploy-{dead.pid}-x").mkdir()
    (tmp_path / f"agn-deploy-{os.getppid()}-y").mkdir()  # our parent is alive
    (tmp_path / f"other-{dead.pid}-z").mkdir()
    assert sweep("agn-deploy-", tmp_path) == [tmp_path / f"agn-deploy-{dead.pid}-x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"agn-deploy-{os.getppid()}-y",
                                                           f"other-{dead.pid}-z"]
