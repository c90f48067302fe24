"""`evoplastic bench inner` on a tiny network: the table has its rows and the JSON positive rates."""

import json

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
