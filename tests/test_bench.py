"""`evoplastic bench` through cli.main on tiny networks: rows, rates, ratios and the JSON agree."""

import json
import os

import pytest

from evoplastic.cli import main


def slow(reason: str):
    """Marked slow and skipped, with its reason, unless EVOPLASTIC_SLOW_TESTS is set."""
    skip = pytest.mark.skipif(not os.environ.get("EVOPLASTIC_SLOW_TESTS"),
                              reason=f"{reason}; set EVOPLASTIC_SLOW_TESTS=1")
    return lambda test: pytest.mark.slow(skip(test))


def table_rows(table: str, modes: tuple[str, ...]) -> list[list[str]]:
    """Split lines of the printed table that start with one of modes and have N as their second column."""
    rows = [line.split() for line in table.splitlines() if line.startswith(modes)]
    return [r for r in rows if len(r) > 1 and r[1].isdigit()]


def pick(results: list[dict], mode: str, members: int, steps: int) -> dict:
    (found,) = [r for r in results if (r["case"]["mode"], r["case"]["members"], 5 * r["case"]["k_shot"])
                == (mode, members, steps)]
    return found


def test_bench_inner_rows_rates_and_ratio_match_the_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "inner", "--dims", "16,8,5", "--members", "1,8", "--steps", "10", "--min-seconds", "0",
            "--json", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "hardware: CPU" in table and "synthetic" in table
    rows = table_rows(table, ("no-grad", "autograd"))
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("no-grad", "1", "10"), ("no-grad", "8", "10"), ("autograd", "1", "10"),
        ("no-grad", "8", "5"), ("autograd", "1", "5"),
    ]
    figures = json.loads(out.read_text())
    results = figures["results"]
    assert [(r["case"]["members"], 5 * r["case"]["k_shot"]) for r in results] == [(int(r[1]), int(r[2])) for r in rows]
    for row, r in zip(rows, results):
        members = r["case"]["members"]
        assert r["rate_best"] == pytest.approx(members / r["seconds_best"])  # member-episodes per second
        assert r["rate_median"] == pytest.approx(members / r["seconds_median"])
        assert r["seconds_best"] <= r["seconds_median"]
        assert (row[5], row[6]) == (f"{r['rate_median']:.2f}", f"{r['rate_best']:.2f}")  # the table is the JSON
        assert row[9] == f"{r['increase_mib'] / members:.2f}"
    best = max((pick(results, "nograd", n, 10) for n in (1, 8)), key=lambda r: r["rate_best"])
    assert figures["best_members"] == best["case"]["members"]
    assert figures["ratio"] == pytest.approx(best["rate_best"] / pick(results, "autograd", 1, 10)["rate_best"])
    assert f"= {figures['ratio']:.1f}x" in table
    # member 0 on the same task and initial W: no-grad N=1 and autograd run the same episode
    one, grad = pick(results, "nograd", 1, 10), pick(results, "autograd", 1, 10)
    assert one["query_loss"] == pytest.approx(grad["query_loss"], rel=1e-5)


@slow("compiles in a subprocess (~13 s, ~25 s without the Inductor cache)")
def test_bench_inner_compiled_rows(capsys):
    argv = ["bench", "inner", "--dims", "16,8,5", "--members", "2", "--steps", "5", "--min-seconds", "0", "--compiled",
            "--no-steps-scan"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    rows = table_rows(table, ("no-grad", "compiled", "autograd"))
    assert [(r[0], r[1]) for r in rows] == [("no-grad", "2"), ("compiled", "2"), ("autograd", "1")]
    assert rows[1][-3] == "compile" and "compiled / eager no-grad at N=2" in table


@slow("compiles its rows in subprocesses (~46 s on 2 cores)")
def test_bench_suite_rows_and_ratios(tmp_path, capsys):
    """`evoplastic bench` on a tiny network: each ratio column is the row's rate over the per-member/autograd row."""
    out = tmp_path / "suite.json"
    argv = ["bench", "--dims", "16,8,5", "--steps", "5", "--min-seconds", "0", "--members", "2", "--precisions",
            "bfloat16", "--check-tasks", "2", "--no-mpi", "--json", str(out), "--plot", str(tmp_path / "rates.png")]
    assert main(argv) == 0
    table = capsys.readouterr().out
    rows = table_rows(table.replace("per-member loop", "per-member"), ("per-member", "no-grad", "compiled", "autograd"))
    assert [r[0] for r in rows] == ["per-member", "no-grad", "compiled", "compiled+bfloat16", "autograd"]
    figures = json.loads(out.read_text())
    rates = [r["rate_best"] for r in figures["results"]]
    assert len(rates) == len(rows)
    for row, rate in zip(rows, rates):  # path, N, rate, x per-member, x autograd
        assert row[2:5] == [f"{rate:.2f}", f"{rate / rates[0]:.2f}", f"{rate / rates[-1]:.1f}"]
    assert figures["machine"]["bandwidth"] > 0 and figures["machine"]["flop_rate"] > 0
    assert (tmp_path / "rates.png").stat().st_size > 1000
    checks = {c["precision"]: c for c in figures["precision_check"]}
    assert set(checks) == {"float32", "bfloat16"} and checks["float32"]["max_abs_delta"] == 0
    assert checks["bfloat16"]["pairs"] == 16 and abs(checks["bfloat16"]["mean_delta"]) < 0.2


@pytest.mark.mpi
@slow("two mpiexec launches, each importing torch (~13 s on 2 cores)")
def test_bench_mpi_reports_identical_fitnesses_across_ranks(tmp_path, capsys):
    """Two short ES runs under mpiexec -n 1 and -n 2 (~13 s on 2 cores: two launches with torch imports)."""
    from evoplastic.bench.mpi import find_mpiexec

    if find_mpiexec() is None:
        pytest.skip("no mpiexec (pip install mpich)")
    out = tmp_path / "mpi.json"
    argv = ["bench", "mpi", "--dataset", "digits", "--ranks", "1,2", "--population", "4", "--generations", "2",
            "--warmup", "0", "--repeats", "1", "--json", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    rows = {int(line.split()[0]): line.split() for line in table.splitlines() if line.strip()[:1].isdigit()}
    assert set(rows) == {1, 2} and rows[1][-1] == rows[2][-1] == "yes"  # fitnesses bit-identical across R
    best = {r["ranks"]: r for r in json.loads(out.read_text())["best"]}
    for r in best.values():
        assert r["member_episodes_per_s"] == pytest.approx(4 * r["generations_per_s"])
    assert rows[2][4] == f"{best[2]['generations_per_s'] / best[1]['generations_per_s']:.2f}x"


def test_roofline_counts_the_paper_network():
    from evoplastic.bench.roofline import Machine, member_episode

    work = member_episode((784, 170, 130, 100, 70, 47), 250, 50, "compiled", members_per_feedback=8)
    assert round(work.flops / 1e6, 1) == 598.5  # docs/performance.md, section 1
    assert round(work.bytes / 1e9, 3) == 0.737  # 4 + 1/8 passes of 0.715 MB, 250 steps
    machine = Machine(bandwidth=45e9, flop_rate=60e9, device="cpu")
    assert round(machine.ceiling(work)) == 61  # DRAM-bound, as in section 2
    half = member_episode((784, 170, 130, 100, 70, 47), 250, 50, "compiled", weight_bytes=2, members_per_feedback=8)
    assert half.bytes < 0.55 * work.bytes
