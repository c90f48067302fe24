"""Plastic feedback over one episode: accuracy and the angle of each layer's error to backprop's.

The rule of a plastic-feedback run against the same θ with B frozen ("feedback fixed") and the fa/bp
baselines, on the same online streams of held-out EMNIST classes 37-41 (5-way, 250 samples, as an
episode), repeated over independent streams and initial weights.
Usage: python experiments/plastic_alignment.py RUN OUT_DIR [--repeats 20]
Writes OUT_DIR/plastic_alignment.png and .md. Data: the data directory (e.g. EVOPLASTIC_DATA=../shared/data).
"""

import argparse
from pathlib import Path

from evoplastic.analysis.stream import evaluate_stream, format_stream_table, plot_stream

from evoplastic.analysis.rule import parse_rule
from evoplastic.families.paper.rulespec import ablated_rules, baseline_rules, load_eval_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--samples", type=int, default=250)
    parser.add_argument("--every", type=int, default=25)
    args = parser.parse_args()
    rule = parse_rule(args.run)
    if not rule.space.feedback_terms:
        raise SystemExit(f"{args.run} has fixed feedback (rule.feedback_terms is empty): nothing to compare")
    single = len(rule.space.feedback_terms) == 1  # then "without φ_x" is the frozen-B rule
    frozen = [r for r in ablated_rules(rule)
              if r.label == "feedback fixed" or single and r.label.startswith("without φ")]
    rules = [rule, *frozen, *baseline_rules(rule)]
    dataset = load_eval_dataset(rule)
    curves = evaluate_stream(rules, dataset, (37, 38, 39, 40, 41), args.samples, args.every, test_size=500,
                             repeats=args.repeats, seed=0, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    header = (f"{args.repeats} streams of {args.samples} samples of EMNIST classes 37-41 (held out), test on 500 "
              f"other images of them; alignment: angle of each hidden layer's error to backprop's (°)")
    table = format_stream_table(curves, header)
    lines = [table, "", "alignment per checkpoint (layers e_1 … e_4), degrees:"]
    for curve in curves:
        if curve.alignment is not None:
            rows = [f"  {s:>4}: " + ", ".join(f"{a:.1f}" for a in row.tolist())
                    for s, row in zip(curve.samples, curve.alignment)]
            lines += [f"{curve.rule.label}:", *rows]
    (args.out / "plastic_alignment.md").write_text("\n".join(lines) + "\n")
    plot_stream(curves, args.out / "plastic_alignment.png", title="plastic vs fixed feedback, held-out EMNIST 37-41")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
