"""`evoplastic bench inner` on a tiny network: the table has its rows and the JSON positive rates."""

import json
import os

import pytest

from evoplastic.bench import inner as bench


def test_bench_inner_tiny_network(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["inner", "--dims", "16,8,5", "--members", "1,8", "--steps", "10", "--min-seconds", "0", "--json", str(out)]
    assert bench.main(argv) == 0
    table = capsys.readouterr().out
    assert "hardware: CPU" in table and "synthetic" in table
    rows = [line.split() for line in table.splitlines() if line.startswith(("no-grad", "autograd"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("no-grad", "1", "10"), ("no-grad", "8", "10"), ("autograd", "1", "10"),
        ("no-grad", "8", "5"), ("autograd", "1", "5"),
    ]
    assert "member-episodes/s / autograd" in table and "unroll scan, autograd N=1" in table
    figures = json.loads(out.read_text())
    assert figures["ratio"] > 0 and figures["hardware"]["torch"]
    for result in figures["results"]:
        assert result["rate_median"] > 0 and result["rate_best"] >= result["rate_median"]
        assert result["peak_mib"] > 0 and result["increase_mib"] >= 0


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("EVOPLASTIC_SLOW_TESTS"),
                    reason="compiles in a subprocess (~13 s, ~25 s without the Inductor cache); "
                           "set EVOPLASTIC_SLOW_TESTS=1")
def test_bench_inner_compiled_rows(capsys):
    argv = ["inner", "--dims", "16,8,5", "--members", "2", "--steps", "5", "--min-seconds", "0", "--compiled",
            "--no-steps-scan"]
    assert bench.main(argv) == 0
    table = capsys.readouterr().out
    rows = [line.split() for line in table.splitlines() if line.startswith(("no-grad", "compiled", "autograd"))]
    rows = [r for r in rows if r[1].isdigit()]  # not the "compiled / eager" summary line
    assert [(r[0], r[1]) for r in rows] == [("no-grad", "2"), ("compiled", "2"), ("autograd", "1")]
    assert rows[1][-3] == "compile" and "compiled / eager no-grad at N=2" in table


def test_bench_suite_rows_and_ratios(tmp_path, capsys):
    """`evoplastic bench` on a tiny network (compiles in subprocesses: ~40 s, less with a warm Inductor cache)."""
    from evoplastic.bench import suite as bench_suite

    out = tmp_path / "suite.json"
    argv = ["--dims", "16,8,5", "--steps", "5", "--min-seconds", "0", "--members", "2", "--precisions", "bfloat16",
            "--check-tasks", "2", "--no-mpi", "--json", str(out), "--plot", str(tmp_path / "rates.png")]
    assert bench_suite.main(argv) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in table.splitlines()
            if line.startswith(("per-member", "no-grad", "compiled", "autograd"))}
    assert list(rows) == ["per-member", "no-grad", "compiled", "compiled+bfloat16", "autograd"]
    assert rows["per-member"][4] == "1.00" and rows["autograd"][4] == "1.0"  # each is its own baseline
    figures = json.loads(out.read_text())
    assert figures["machine"]["bandwidth"] > 0 and figures["machine"]["flop_rate"] > 0
    assert (tmp_path / "rates.png").stat().st_size > 1000
    checks = {c["precision"]: c for c in figures["precision_check"]}
    assert set(checks) == {"float32", "bfloat16"} and checks["float32"]["max_abs_delta"] == 0
    assert checks["bfloat16"]["pairs"] == 16 and abs(checks["bfloat16"]["mean_delta"]) < 0.2


def test_roofline_counts_the_paper_network():
    from evoplastic.bench.roofline import Machine, member_episode

    work = member_episode((784, 170, 130, 100, 70, 47), 250, 50, "compiled", members_per_feedback=8)
    assert round(work.flops / 1e6, 1) == 598.5  # docs/performance.md, section 1
    assert round(work.bytes / 1e9, 3) == 0.737  # 4 + 1/8 passes of 0.715 MB, 250 steps
    machine = Machine(bandwidth=45e9, flop_rate=60e9, device="cpu")
    assert round(machine.ceiling(work)) == 61  # DRAM-bound, as in section 2
    half = member_episode((784, 170, 130, 100, 70, 47), 250, 50, "compiled", weight_bytes=2, members_per_feedback=8)
    assert half.bytes < 0.55 * work.bytes
