"""Log analysis throughput and peak memory on a generated Kaggle output log.

    python bench/logs.py            # ~100 MB
    python bench/logs.py --mb 300

A speed figure depends on the machine and its load (a loaded 2-core CI machine measured 1.1 MB/s
where an idle one does ~30 MB/s), so it is measured here and recorded in docs/PERFORMANCE.md,
never asserted by a test; tests/test_log_analysis.py keeps only the memory bound, using the same
generator and measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_big_log(path: Path, megabytes: int) -> int:
    """A Kaggle array of ~`megabytes` MB, written a block at a time; returns the element count."""
    block = []
    for i in range(500):
        t = round(0.01 * i, 3)
        event = "[event] " + json.dumps({"event": "train_progress", "t": t, "steps": i, "total": 10**6})
        warning = "w.py:1: NumbaPerformanceWarning: Grid size 70 will likely result in low occupancy"
        for data in (event, warning,
                     "|    fps              | 8        |", "an ordinary line of output " * 3):
            block.append(json.dumps({"stream_name": "stdout", "time": t + 5, "data": data + "\n"}))
    chunk = ("\n," + "\n,".join(block)).encode()
    count = 1
    with path.open("wb") as handle:
        handle.write(b'[{"stream_name":"stdout","time":0.0,"data":"start\\n"}')
        while handle.tell() < megabytes * 2**20:
            handle.write(chunk)
            count += len(block)
        handle.write(b"\n]")
    return count


def measure(path: Path) -> dict:
    """Analyse `path` in a fresh process: seconds, peak RSS growth (kB), lines and counts.

    Linux resets the peak (VmHWM) on "5" written to /proc/self/clear_refs, so the imports' own
    peak does not hide the analysis' growth."""
    script = textwrap.dedent(f"""
        import json, re, time
        from lib.runlog.analysis import analyse_path
        def kb(field):
            return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        open("/proc/self/clear_refs", "w").write("5")
        before = kb("VmRSS")
        start = time.perf_counter()
        a = analyse_path({str(path)!r})
        seconds = time.perf_counter() - start
        print(json.dumps({{"seconds": seconds, "rss_growth_kb": kb("VmHWM") - before, "lines": a["lines"],
                          "numba": a["warnings"][0]["count"], "rows": a["legacy"]["sb3"]["rows"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="size of the generated log (default 100)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.log"
        elements = write_big_log(path, args.mb)
        result = measure(path)
        size = path.stat().st_size / 2**20
    rate = size / result["seconds"]
    print(f"{size:.1f} MB, {elements} elements: {result['seconds']:.2f} s, {rate:.1f} MB/s, "
          f"peak RSS growth {result['rss_growth_kb'] / 1024:.1f} MB; load average at end "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
