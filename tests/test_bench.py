"""`evoplastic bench inner` on a tiny network: the table has its rows and the JSON positive rates."""

import json
import os

import pytest

from evoplastic import bench


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
