"""How fast the command line starts: `wan-nb --help`, `wan-nb plan --help` and `wan-nb train --help`, each run
several times in a fresh process. Prints JSON: the median seconds per command, the target, and which heavy
modules `import wan_nb.cli` pulls in (none, when every command imports its engine modules inside its function).

Usage: python benchmarks/bench_cli.py [--runs 7]
"""
import argparse, json, statistics, subprocess, sys, time
from pathlib import Path

TARGET_S = 0.5
COMMANDS = (['--help'], ['plan', '--help'], ['train', '--help'])
HEAVY = ('torch', 'diffusers', 'transformers', 'mlflow', 'matplotlib', 'numpy', 'papermill', 'av')


def seconds(argv: list[str], runs: int) -> list[float]:
    "Wall-clock seconds of `argv` in a fresh process, `runs` times."
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def heavy_imports(python: str) -> list[str]:
    "The heavy modules that `import wan_nb.cli` imports."
    code = f"import sys, wan_nb.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([python, '-c', code], check=True, capture_output=True, text=True).stdout.split()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=7)
    args = p.parse_args()
    bin_dir = Path(sys.executable).parent
    wan_nb = str(bin_dir/'wan-nb')
    subprocess.run([wan_nb, '--help'], check=True, capture_output=True)  # warm the file cache
    rows = {}
    for cmd in COMMANDS:
        t = seconds([wan_nb, *cmd], args.runs)
        rows['wan-nb ' + ' '.join(cmd)] = dict(median_s=round(statistics.median(t), 3), min_s=round(min(t), 3),
                                               max_s=round(max(t), 3))
    bare = statistics.median(seconds([sys.executable, '-c', 'pass'], args.runs))
    print(json.dumps(dict(target_s=TARGET_S, runs=args.runs, commands=rows, python_startup_s=round(bare, 3),
                          heavy_modules_imported=heavy_imports(sys.executable),
                          ok=all(r['median_s'] < TARGET_S for r in rows.values())), indent=1))


if __name__ == '__main__':
    main()
