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
    """--compiled times what es.compile=true runs on CPU, the C++ single pass; --kernel adds the Inductor step."""
    argv = ["bench", "inner", "--dims", "16,8,5", "--members", "2", "--steps", "5", "--min-seconds", "0", "--compiled",
            "--no-steps-scan", "--kernel", "cpp,inductor"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    rows = table_rows(table, ("no-grad", "compiled", "autograd"))
    assert [(r[0], r[1]) for r in rows] == [("no-grad", "2"), ("compiled+cpp", "2"), ("compiled+inductor", "2"),
                                            ("autograd", "1")]
    assert rows[1][-3] == "compile" and "compiled (cpp) / eager no-grad at N=2" in table
    assert "compiled (inductor) / eager no-grad at N=2" in table


@slow("compiles its rows in fresh subprocesses (~25 s on 2 cores)")
def test_bench_suite_rows_and_ratios(tmp_path, capsys):
    """`evoplastic bench` on a tiny network: each ratio column is the row's rate over the per-member/autograd row."""
    out = tmp_path / "suite.json"
    argv = ["bench", "--dims", "16,8,5", "--steps", "5", "--min-seconds", "0", "--members", "2", "--precisions",
            "bfloat16", "--check-tasks", "2", "--no-mpi", "--families", "kcap", "--family-members", "1,2",
            "--family-set", "kcap:kcap.n_unlabelled=20", "--no-family-autograd", "--json", str(out),
            "--plot", str(tmp_path / "rates.png")]
    assert main(argv) == 0
    table = capsys.readouterr().out
    rows = table_rows(table.replace("per-member loop", "per-member"), ("per-member", "no-grad", "compiled", "autograd"))
    assert [r[0] for r in rows] == ["per-member", "autograd", "no-grad", "compiled+inductor", "compiled+cpp",
                                    "compiled+cpp+bfloat16"]
    figures = json.loads(out.read_text())
    rates = [r["rate_best"] for r in figures["results"]]
    assert len(rates) == len(rows)
    for row, rate in zip(rows, rates):  # path, N, rate, x per-member, x autograd
        assert row[2:5] == [f"{rate:.2f}", f"{rate / rates[0]:.2f}", f"{rate / rates[1]:.1f}"]
    assert figures["machine"]["bandwidth"] > 0 and figures["machine"]["flop_rate"] > 0
    assert (tmp_path / "rates.png").stat().st_size > 1000
    checks = {c["precision"]: c for c in figures["precision_check"]}
    assert set(checks) == {"float32", "bfloat16"} and checks["float32"]["max_abs_delta"] == 0
    assert checks["bfloat16"]["pairs"] == 16 and abs(checks["bfloat16"]["mean_delta"]) < 0.2
    kcap = [line.split() for line in table.splitlines() if line.startswith("kcap no-grad")]
    assert [r[2] for r in kcap] == ["1", "2"]
    assert [r[3] for r in kcap] == [f"{r['rate_best']:.3g}" for r in figures["families"]["kcap"]["results"]]


# --- the suite's plan, streaming and report, without timing the paper network ---------------------------------

def suite_args(monkeypatch, *argv: str, cuda: bool = False):
    """bench's parsed options; cuda: as on a CUDA machine (planning only: nothing touches a GPU)."""
    from evoplastic.bench import suite

    monkeypatch.setattr(suite.torch.cuda, "is_available", lambda: cuda)
    return suite.parse_args(["--device", "cuda" if cuda else "cpu", *argv])


def planned(args) -> list[tuple[str, int]]:
    from evoplastic.bench.suite import suite_cases

    return [(c.label, c.members) for c in suite_cases(args)]


def test_cuda_default_is_a_short_set_in_one_process_and_full_adds_the_rest(monkeypatch):
    from evoplastic.bench.suite import check_spec, plan_jobs

    assert set(suite_args(monkeypatch, cuda=True).families) >= {"kcap", "spiking"}  # every registered but paper
    assert "paper" not in suite_args(monkeypatch, cuda=True).families
    quick = suite_args(monkeypatch, "--families", "kcap,spiking", cuda=True)  # another test may register more
    assert planned(quick) == [("no-grad", 1), ("autograd", 1), ("no-grad", 2048),
                              ("compiled+graph+inductor", 2048), ("compiled+graph+inductor+float16", 2048),
                              ("compiled+graph+triton", 2048),
                              ("compiled+graph+triton+float16", 2048)]
    assert quick.one_process and not quick.mpi and quick.families == ("kcap", "spiking")
    (group,) = plan_jobs(quick)  # one child: every shape compiles once, shared by the rows and the check
    assert [job["kind"] for job in group] == ["case"] * 7 + ["precision"] + ["family"] * 8
    families = [(job["case"]["family"], job["case"]["members"], job["case"]["autograd"]) for job in group[8:]]
    assert families == [("kcap", 1, False), ("kcap", 512, False), ("kcap", 8192, False), ("kcap", 1, True),
                        ("spiking", 1, False), ("spiking", 64, False), ("spiking", 512, False), ("spiking", 1, True)]
    assert all(job["case"]["memory"] for job in group[8:])  # the CUDA allocator's peak resets in one process
    assert group[7]["spec"]["per_task"] == 2048 and group[7]["spec"]["precisions"] == ["float16"]
    assert check_spec(suite_args(monkeypatch, "--members", "8192", cuda=True), 50)["tasks"] == 2  # ≤ 16384 pairs
    full = suite_args(monkeypatch, "--full", cuda=True)
    assert planned(full) == [("no-grad", 1), ("autograd", 1), ("no-grad", 256), ("no-grad", 2048),
                             ("compiled+inductor", 256), ("compiled+inductor", 2048),
                             ("compiled+graph+inductor", 256), ("compiled+graph+inductor", 2048),
                             ("compiled+graph+inductor+tf32", 2048), ("compiled+graph+inductor+bfloat16", 2048),
                             ("compiled+graph+inductor+float16", 2048), ("compiled+graph+triton", 2048),
                             ("compiled+graph+triton+bfloat16", 2048), ("compiled+graph+triton+float16", 2048)]
    assert full.mpi and full.one_process
    assert not suite_args(monkeypatch, "--no-one-process", "--families", "none", cuda=True).one_process


def test_cpu_default_is_the_full_set_with_a_fresh_process_per_row(monkeypatch):
    from evoplastic.bench.suite import plan_jobs

    assert {"kcap", "spiking"} <= set(suite_args(monkeypatch).families)
    args = suite_args(monkeypatch, "--families", "kcap,spiking")  # the default, unless a test registered more
    assert planned(args) == planned(suite_args(monkeypatch, "--full")) == [
        ("no-grad", 1), ("autograd", 1), ("no-grad", 8), ("no-grad", 32), ("compiled+inductor", 8),
        ("compiled+inductor", 32),
        ("compiled+cpp", 8), ("compiled+cpp", 32), ("compiled+cpp+bfloat16", 32), ("compiled+cpp+float16", 32)]
    assert not args.one_process and args.mpi and args.families == ("kcap", "spiking")
    groups = plan_jobs(args)  # 10 paper rows, the check, kcap at 1, 16, 64 and spiking at 1, 8, each + autograd
    assert [len(g) for g in groups] == [1] * 10 + [1] + [1] * 7 and groups[10][0]["spec"]["per_task"] == 8
    assert [g[0]["case"]["members"] for g in groups[11:]] == [1, 16, 64, 1, 1, 8, 1]
    assert all(g[0]["case"]["memory"] for g in groups[11:])  # each family row in a fresh process
    assert [len(g) for g in plan_jobs(suite_args(monkeypatch, "--check-tasks", "0", "--families", "none"))] == [1] * 10


def test_family_rows_are_chosen_by_name_and_the_only_option(monkeypatch):
    """--families picks any registered family (the paper's too, through its Problem); --only families drops the
    paper rows, the check and MPI; --family-set reaches one family's config; one CPU process measures no memory."""
    from evoplastic.bench.suite import plan_jobs

    args = suite_args(monkeypatch, "--only", "families", "--families", "paper,spiking", "--family-members", "2",
                      "--family-set", "spiking:spiking.steps=3", "--no-family-autograd")
    assert not args.mpi and [[job["kind"] for job in g] for g in plan_jobs(args)] == [["family"], ["family"]]
    cases = [g[0]["case"] for g in plan_jobs(args)]
    assert [(c["family"], c["members"], c["overrides"]) for c in cases] == [("paper", 2, ()),
                                                                           ("spiking", 2, ("spiking.steps=3",))]
    assert not any(job["case"]["memory"] for job in plan_jobs(suite_args(monkeypatch, "--only", "families",
                                                                         "--one-process"))[0])
    only_paper = suite_args(monkeypatch, "--only", "paper")
    assert only_paper.families == () and all(g[0]["kind"] != "family" for g in plan_jobs(only_paper))


@pytest.mark.parametrize("argv, message", [
    (["--precisions", "float8"], "unknown precision 'float8'"),
    (["--family-members", "0"], "--family-members takes member counts ≥ 1"),
    (["--families", "kcap,nope"], "unknown family 'nope'"),
    (["--family-set", "spiking.steps=3"], "write FAMILY:KEY=VALUE"),
    (["--rule", "nope"], "nope"),
])
def test_bad_bench_options_are_one_line_errors(argv, message, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        suite_args(monkeypatch, *argv)
    assert message in capsys.readouterr().err


def test_a_child_reports_each_result_as_it_finishes_it():
    """Two jobs in one child: the first result arrives while the second (timed for ≥ 2 s) still runs."""
    import time
    from dataclasses import asdict

    from evoplastic.bench.family import FamilyCase
    from evoplastic.bench.inner import Case
    from evoplastic.bench.suite import stream_jobs

    jobs = [{"kind": "case", "case": asdict(Case("nograd", 1, 1, "bio", (16, 8, 5), "cpu", 0.0, 1))},
            {"kind": "family", "case": asdict(FamilyCase("kcap", 2, "cpu", 2.0, 1, ("kcap.n_unlabelled=20",)))}]
    start, arrivals = time.perf_counter(), []
    for message in stream_jobs(jobs):
        arrivals.append((message["kind"], time.perf_counter() - start))
    done = time.perf_counter() - start
    assert [kind for kind, _ in arrivals] == ["case", "family"]
    assert done - arrivals[0][1] > 1.5  # not held back until the child exits
    assert arrivals[1][1] > 2.0


def test_a_family_row_times_an_adam_step_and_refuses_one_without_a_gradient():
    """The autograd case backpropagates through the family's Problem (a finite gradient, its memory read); a
    config whose θ space names no gradient (a piecewise-linear paper activation) is refused with that reason."""
    from evoplastic.bench.family import CannotTime, FamilyCase, measure_family

    result = measure_family(FamilyCase("kcap", 1, "cpu", 0.0, 1, ("kcap.n_unlabelled=20",), autograd=True))
    assert result.grad_finite is True and result.reps == 1 and result.rate_best == 1 / result.seconds_best
    assert result.memory_source == "peak RSS" and result.episode_mib >= 0
    grad_free = measure_family(FamilyCase("kcap", 2, "cpu", 0.0, 1, ("kcap.n_unlabelled=20",), memory=False))
    assert grad_free.grad_finite is None and grad_free.reps >= 2 and grad_free.episode_mib != grad_free.episode_mib
    with pytest.raises(CannotTime, match="not twice differentiable"):
        measure_family(FamilyCase("paper", 1, "cpu", 0.0, 1, ("network.activation=relu",), autograd=True))


def test_bench_prints_rows_as_they_arrive_and_writes_the_families_to_the_json(monkeypatch, tmp_path, capsys):
    """With the children replaced by canned results: the per-member and autograd rows print together, every later
    row the moment it arrives, then the precision check and a family's section (its own workload sentence, MiB per
    member as the slope between its N, a case it cannot run with the reason); the JSON keeps them all."""
    from dataclasses import asdict

    from evoplastic.bench import suite
    from evoplastic.bench.family import FamilyCase, FamilyResult
    from evoplastic.bench.inner import Case, Result

    def result(mode: str, members: int, rate: float, **kw) -> dict:
        case = Case(mode, members, 1, "pool", (16, 8, 5), "cpu", 0.0, 1, **kw)
        return asdict(Result(case, 2, members / rate, members / rate, rate, rate, 10.0, 1.0, 0.5, 0.25, "synthetic"))

    def fake_stream(jobs):
        kinds = [job["kind"] for job in jobs]
        assert kinds == ["case"] * 6 + ["precision", "family", "family", "family"]  # --one-process: one child
        yield {"kind": "case", "result": result("nograd", 1, 10.0)}
        assert "per-member loop" not in capsys.readouterr().out  # its x autograd is not known yet
        yield {"kind": "case", "result": result("autograd", 1, 2.0)}
        printed = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in printed] == ["per-member", "autograd"]
        assert printed[1].split()[3:5] == ["0.20", "1.0"]
        for message in ({"kind": "case", "result": result("nograd", 2, 15.0)},
                        {"kind": "case", "result": result("compiled", 2, 30.0)},
                        {"kind": "case", "result": result("compiled", 2, 35.0, kernel="cpp")},
                        {"kind": "case", "result": result("compiled", 2, 40.0, precision="bfloat16", kernel="cpp")}):
            yield message
            (line,) = capsys.readouterr().out.splitlines()
            rate = message["result"]["rate_best"]
            assert line.split()[2:5] == [f"{rate:.2f}", f"{rate / 10:.2f}", f"{rate / 2:.1f}"]
        check = lambda name, accuracy: {"precision": name, "accuracy": accuracy, "loss": 1.0, "pairs": 16,
                                        "mean_delta": accuracy - 0.5, "max_abs_delta": abs(accuracy - 0.5)}
        yield {"kind": "precision", "spec": jobs[6]["spec"], "checks": [check("float32", 0.5), check("bfloat16", 0.49)]}
        assert "16 (θ, task) pairs (2 tasks × 8 θ)" in capsys.readouterr().out
        for members, rate, mib, slope in ((1, 5.0, 10.0, "—"), (2, 8.0, 13.5, "3.50")):
            case = FamilyCase("kcap", members, "cpu", 0.0, 1, ("kcap.n_unlabelled=20",))
            yield {"kind": "family", "result": asdict(FamilyResult(case, 2, members / rate, members / rate, rate,
                                                                   rate, 0.7, mib, "peak RSS"))}
            printed = capsys.readouterr().out
            assert ("S=20 unlabelled samples streamed once, T=3 recurrent steps" in printed) == (members == 1)
            row = printed.splitlines()[-1].split()
            assert row[:4] == ["kcap", "no-grad", str(members), f"{rate:.3g}"]
            assert row[5:7] == [f"{rate / 5:.3g}", f"{rate / 10:.3g}"]  # x its N=1, x the paper's per-member loop
            assert row[7:9] == [f"{mib:.2f}", slope]  # episode MiB, MiB per member against N = 1
        yield {"kind": "family-skipped", "reason": "no gradient here",
               "case": asdict(FamilyCase("kcap", 1, "cpu", 0.0, 1, ("kcap.n_unlabelled=20",), autograd=True))}
        assert " ".join(capsys.readouterr().out.split()) == "kcap autograd (Adam) 1 skipped: no gradient here"

    monkeypatch.setattr(suite, "stream_jobs", fake_stream)
    monkeypatch.setattr(suite, "measure_machine", lambda device: suite.Machine(1e10, 1e10, "cpu"))
    out = tmp_path / "bench.json"
    argv = ["bench", "--dims", "16,8,5", "--steps", "5", "--members", "2", "--precisions", "bfloat16", "--check-tasks",
            "2", "--no-mpi", "--one-process", "--families", "kcap", "--family-members", "1,2", "--family-set",
            "kcap:kcap.n_unlabelled=20", "--json", str(out)]
    assert main(argv) == 0
    assert "bench: " in capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert [r["case"]["mode"] for r in figures["results"]] == ["nograd", "autograd", "nograd"] + ["compiled"] * 3
    assert "S=20 unlabelled samples" in figures["families"]["kcap"]["workload"]
    assert [r["rate_best"] for r in figures["families"]["kcap"]["results"]] == [5.0, 8.0]
    assert [m["reason"] for m in figures["families_skipped"]] == ["no gradient here"]
    assert figures["precision_check_setup"]["per_task"] == 8 and figures["options"]["one_process"] is True


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


def test_family_rows_alone_compare_with_the_paper_family_through_its_problem(monkeypatch, capsys):
    """--only families measures no machine ceilings and prints no paper table; a family's rate is then shown as a
    multiple of the paper family's N = 1 row through its Problem, when that family is timed too."""
    from dataclasses import asdict

    from evoplastic.bench import suite
    from evoplastic.bench.family import FamilyCase, FamilyResult

    def fake_stream(jobs):
        (job,) = jobs  # a fresh process per family row
        case = FamilyCase.from_dict(job["case"])
        rate = {"paper": 10.0, "kcap": 5.0}[case.family] * case.members
        yield {"kind": "family", "result": asdict(FamilyResult(case, 2, 1 / rate, 1 / rate, rate, rate, 0.5, 4.0,
                                                               "peak RSS"))}

    monkeypatch.setattr(suite, "stream_jobs", fake_stream)
    monkeypatch.setattr(suite, "measure_machine", lambda device: pytest.fail("no ceilings without paper rows"))
    argv = ["bench", "--only", "families", "--families", "paper,kcap", "--family-members", "1", "--no-family-autograd",
            "--family-set", "kcap:kcap.n_unlabelled=20"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("evoplastic bench: family rows only (paper, kcap)") and "roofline" not in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if " no-grad " in line}
    assert rows["paper"][2:7] == ["1", "10", "0.1", "1", "1"] and rows["kcap"][2:7] == ["1", "5", "0.2", "1", "0.5"]


def test_a_family_row_that_fails_is_printed_and_the_suite_goes_on_to_exit_1(monkeypatch, capsys):
    """A family whose row fails (e.g. its data is missing) prints the reason in its section; the other family's rows
    still run, and the exit status says something failed."""
    from dataclasses import asdict

    from evoplastic.bench import suite
    from evoplastic.bench.family import FamilyCase, FamilyResult

    def fake_stream(jobs):
        (job,) = jobs
        case = FamilyCase.from_dict(job["case"])
        if case.family == "spiking":
            yield {"kind": "family-failed", "case": job["case"], "reason": "DataError: npz file /x.npz not found"}
        else:
            yield {"kind": "family", "result": asdict(FamilyResult(case, 2, 0.1, 0.1, 10.0, 10.0, 0.5))}

    monkeypatch.setattr(suite, "stream_jobs", fake_stream)
    argv = ["bench", "--only", "families", "--families", "spiking,kcap", "--family-members", "1",
            "--no-family-autograd", "--family-set", "spiking:task.dataset=digits"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "spiking no-grad              1  FAILED: DataError: npz file /x.npz not found" in out
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("kcap no-grad")] == [
        ["kcap", "no-grad", "1"]]
