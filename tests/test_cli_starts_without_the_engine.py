"""`wan-nb --help` and `wan-nb plan --help` start fast because the command line imports no engine module until a
command runs: torch, diffusers and MLflow stay unimported (benchmarks/bench_cli.py measures the seconds)."""
import subprocess
import sys

HEAVY = ('torch', 'diffusers', 'transformers', 'mlflow', 'matplotlib', 'numpy', 'papermill', 'av')


def imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_importing_the_cli_imports_no_engine():
    assert imported_after('import wan_nb.cli') == []
    ours = imported_after("import wan_nb.cli\nprint(*sorted(m for m in sys.modules if m.startswith('wan_nb')))")
    assert ours == ['wan_nb', 'wan_nb.cli', 'wan_nb.core']


def test_help_of_every_command_imports_no_engine():
    for argv in ([], ['plan'], ['train'], ['cache'], ['runs'], ['slider']):
        code = f"import contextlib, io\nfrom wan_nb.cli import main\n" \
               f"with contextlib.redirect_stdout(io.StringIO()): assert main({argv + ['--help']!r}) == 0"
        assert imported_after(code) == [], argv

