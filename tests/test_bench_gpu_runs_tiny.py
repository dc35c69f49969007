"""benchmarks/bench_gpu.py --tiny runs every case of the GPU benchmark on the CPU and reports numbers for each."""
import json, os, subprocess, sys
from numbers import Number
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ('1.3b', '14b_bf16', '14b_fp8', '14b_int8', '14b_fp8_resident', 'a14b_fp8')


def bench(tmp_path, *args) -> dict:
    "Run the benchmark with --tiny and `args` in a subprocess; the JSON it wrote (which is also what it printed)."
    out = tmp_path/'bench.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'bench_gpu.py'), '--tiny', '--json', str(out), *args],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert json.loads(r.stdout) == res
    return res


def number(x) -> bool: return isinstance(x, Number) and not isinstance(x, bool) and x == x


def test_every_case_reports_numbers(tmp_path):
    res = bench(tmp_path)
    assert res['tiny'] and res['cap_gib'] is None and res['skipped'] == []
    assert 'flop_formula' in res and set(res['cases']) == set(CASES)
    for name, case in res['cases'].items():
        assert case.get('ok'), (name, case.get('error'), case.get('traceback'))
        assert number(case['s_per_step']) and case['s_per_step'] > 0, name
        assert all(number(x) for x in case['loss']), name
        assert number(case['plan_peak_gib']) and case['plan_peak_gib'] > 0, name
        assert case['peak_gib'] is None  # no CUDA: no GPU peak to report
    c = res['cases']
    assert all(number(c['1.3b'][k]) for k in ('mfu', 'engine_over_bare', 'flops_per_step', 'tflops_per_s'))
    for name in ('14b_fp8', '14b_int8', 'a14b_fp8'):  # the swap search ran with blocks swapped
        assert c[name]['blocks_to_swap'] > 0 and c[name]['tries'][-1]['ok'], name
    assert number(c['14b_fp8_resident']['swapped_over_resident'])
    assert c['14b_fp8_resident']['swapped_blocks'] == c['14b_fp8']['blocks_to_swap']
    a = c['a14b_fp8']
    assert a['expert'] == ['high', 'high', 'low', 'low', 'high', 'high', 'low']  # expert_switch_every 2
    assert all(number(a[k]) for k in ('switch_cost_s', 'steady_step_s', 'first_switch_step_s'))
    assert set(res['targets']) >= {'mfu_1.3b >= 0.40', 'engine_over_bare <= 1.05', 'swapped_over_resident <= 1.3'}


def test_resident_case_alone_measures_its_own_swapped_run(tmp_path):
    "Without a swapped fp8 result (or with one that swapped nothing) the resident case runs one at --ratio-swap."
    res = bench(tmp_path, '--cases', '14b_fp8_resident', '--ratio-swap', '3', '--steps', '1')
    case = res['cases']['14b_fp8_resident']
    assert case['ok'] and case['swapped_run']['ok'] and case['swapped_run']['blocks_to_swap'] == 3
    assert number(case['swapped_over_resident']) and 'targets' not in res
