"""Measure how the engine notebooks read, against the models in shared/STYLE.md (claudette, fastcore).

Prints JSON: mean characters per code cell, the share of exported definitions followed by a shown value,
the longest run of exported cells without a run between them, and lines over 120 characters in wan_nb/*.py;
per notebook and overall.
Usage: python tools/notebook_stats.py [REPO_ROOT]
"""
import ast, json, re, sys
from pathlib import Path


def directives(src: str) -> set[str]:
    "The nbdev directives (`export`, `hide`, ...) at the top of a cell."
    return {m[1] for m in re.finditer(r'^#\|\s*(\w+)', src, re.M)}


def shows_value(src: str) -> bool:
    "True if the cell ends with an expression that displays a value (not a test or an assert)."
    try: body = ast.parse(src).body
    except SyntaxError: return False
    if not body or not isinstance(body[-1], ast.Expr): return False
    call = body[-1].value
    fn = call.func if isinstance(call, ast.Call) else None
    name = getattr(fn, 'id', None) or getattr(fn, 'attr', None) or ''
    return not name.startswith('test_')


def is_definition(src: str) -> bool:
    try: body = ast.parse(src).body
    except SyntaxError: return False
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) for n in body)


def notebook_stats(path: Path) -> dict:
    cells = [''.join(c['source']) for c in json.loads(path.read_text())['cells'] if c['cell_type'] == 'code']
    kinds = []
    for src in cells:
        d = directives(src)
        kinds.append('export' if d & {'export', 'exporti', 'exports'} else 'skip' if d & {'default_exp'} else 'run')
    defs, shown, run, longest = 0, 0, 0, 0
    for i, (src, kind) in enumerate(zip(cells, kinds)):
        if kind == 'export':
            run += 1
            longest = max(longest, run)
            if is_definition(src):
                defs += 1
                nxt = next((j for j in range(i + 1, len(cells)) if kinds[j] != 'skip'), None)
                shown += nxt is not None and kinds[nxt] == 'run' and shows_value(cells[nxt])
        elif kind == 'run': run = 0
    return dict(cells=len(cells), mean_chars=round(sum(map(len, cells)) / max(len(cells), 1)),
                definitions=defs, followed_by_shown_value=shown, longest_export_run=longest)


def main(root: Path) -> dict:
    per = {p.name: notebook_stats(p) for p in sorted((root/'nbs').glob('[0-9]*.ipynb'))}
    cells = sum(s['cells'] for s in per.values())
    chars = sum(s['mean_chars'] * s['cells'] for s in per.values())
    defs = sum(s['definitions'] for s in per.values())
    modules = [f for f in (root/'wan_nb').glob('*.py') if f.name != '_modidx.py']  # _modidx: nbdev's generated index
    long_lines = sum(len(l) > 120 for f in modules for l in f.read_text().splitlines())
    return dict(mean_chars_per_code_cell=round(chars / cells),
                definitions_followed_by_shown_value=round(sum(s['followed_by_shown_value'] for s in per.values()) / defs, 2),
                longest_export_run=max(s['longest_export_run'] for s in per.values()),
                lines_over_120_in_wan_nb=long_lines, notebooks=per)


if __name__ == '__main__':
    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])), indent=1))
