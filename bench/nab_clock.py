"""The NAB runner's wall time on a corpus of NAB's shape without NAB's values: synthetic series with the file
names and row counts of a NAB checkout (or of a NAB git clone), run by bench.nab with its defaults.

    python -m bench.nab_clock --like-git $NAB_GIT --jobs 2 --json bench/results/nab_clock.json
    python -m bench.nab_clock --like ../shared/data/nab --jobs 2

The runner's time depends on the rows only (each file trains on its probation, at most 750 rows, for a fixed
number of epochs, then scores every row), so a corpus of the same row counts times the full benchmark without
reading its values or labels (the full corpus stays a held-out test). Each synthetic file: a 5-minute
timestamp, a daily sine with noise (seeded by its position), a level shift at 80 % of its rows labelled by one
window. The report: command, machine, cores, load average before and after, date, files, rows, jobs, the
settings, the wall seconds and each file's (training, scoring); no metric (the values are synthetic).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd

from bench import nab
from lstm_ae.errors import DataError


def lengths_of_folder(folder: Path) -> Dict[str, int]:
    """``<category>/<file>.csv`` -> rows (header excluded) of a NAB-layout folder."""
    nab.check_layout(folder, "--like")
    return {k: sum(1 for _ in open(folder / "data" / k)) - 1 for k in nab.data_files(folder)}


def lengths_of_git(git: Path) -> Dict[str, int]:
    """The same for the data files of a NAB git clone's HEAD (``git ls-tree`` and ``git cat-file``)."""
    def git_out(*args: str) -> str:
        proc = subprocess.run(["git", "--git-dir", str(git), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise DataError(f"--like-git {git}: git {args[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return proc.stdout

    names = [p for p in git_out("ls-tree", "-r", "--name-only", "HEAD", "data").split()
             if p.endswith(".csv") and p.count("/") == 2]
    if not names:
        raise DataError(f"--like-git {git}: no data/<category>/<file>.csv at HEAD; give a NAB clone's git folder")
    return {p[len("data/"):]: git_out("cat-file", "-p", f"HEAD:{p}").count("\n") - 1 for p in names}


def synthetic(lengths: Dict[str, int], folder: Path) -> Path:
    """A NAB-layout folder with one synthetic series per entry of ``lengths``."""
    windows = {}
    for i, (key, n) in enumerate(sorted(lengths.items())):
        rng = np.random.default_rng(i)
        t = pd.date_range("2020-01-01", periods=n, freq="5min")
        v = 10 + np.sin(2 * np.pi * np.arange(n) / 288) + 0.2 * rng.normal(size=n)
        at = int(0.8 * n)
        v[at:] += 3.0
        path = folder / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        stamps = t.strftime("%Y-%m-%d %H:%M:%S")
        pd.DataFrame({"timestamp": stamps, "value": np.round(v, 4)}).to_csv(path, index=False)
        half = max(1, n // 40)
        windows[key] = [[f"{stamps[max(at - half, 0)]}.000000", f"{stamps[min(at + half, n - 1)]}.000000"]]
    (folder / nab.LABELS).parent.mkdir(parents=True, exist_ok=True)
    (folder / nab.LABELS).write_text(json.dumps(windows, indent=1))
    return folder


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.nab_clock", description=(__doc__ or "").split("\n")[0])
    like = p.add_mutually_exclusive_group(required=True)
    like.add_argument("--like", type=Path, metavar="PATH", help="a NAB checkout or a folder in its layout")
    like.add_argument("--like-git", type=Path, metavar="GITDIR", help="a NAB clone's git folder (HEAD's data/)")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="files at once (2)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report here too")
    args = p.parse_args(argv)
    try:
        nab.check_runner("lstmae", args.jobs, None)
        lengths = lengths_of_folder(args.like) if args.like else lengths_of_git(args.like_git)
    except DataError as err:
        print(f"bench.nab_clock: {err}", file=sys.stderr)
        sys.exit(2)
    settings = nab.Settings()
    with tempfile.TemporaryDirectory(prefix="nab_clock_") as tmp:
        folder = synthetic(lengths, Path(tmp) / "corpus")
        report = nab.run_all(folder, Path(tmp) / "results", settings, jobs=args.jobs)
    out = {"command": "python -m bench.nab_clock " + " ".join(sys.argv[1:] if argv is None else argv),
           **{k: report[k] for k in ("machine", "cores", "device", "jobs", "load_average_before",
                                     "load_average_after", "date")},
           "files": len(lengths), "rows": sum(lengths.values()), "settings": report["settings"],
           "seconds": report["seconds"], "seconds_summed": round(sum(f["seconds"] for f in report["files"]), 1),
           "per_file": [{k: f[k] for k in ("file", "rows", "seconds", "train_seconds", "score_seconds")}
                        for f in report["files"]]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{out['files']} files, {out['rows']} rows, {args.jobs} at once: {out['seconds']} s "
          f"({out['seconds_summed']} s summed over the files) on {out['machine']}")


if __name__ == "__main__":
    main()
