"""Config loading: defaults, YAML and key=value overrides, validation errors, round trips."""

import pytest
import yaml

from evoplastic.config import (
    ConfigError,
    ExperimentConfig,  # noqa: F401
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
)
from evoplastic.families.paper.config import PaperExperimentConfig


def test_defaults():
    cfg = load_config()
    assert cfg == PaperExperimentConfig()
    assert cfg.network.dims == (784, 170, 130, 100, 70, 47) and cfg.network.activation == "softplus"
    assert (cfg.task.n_way, cfg.task.k_shot, cfg.task.n_query) == (5, 50, 10)
    assert cfg.rule.terms == "pool" and cfg.rule.theta_init == () and cfg.rule.l1 == 0.0


def test_yaml_file_overrides_and_names_the_experiment(tmp_path):
    path = tmp_path / "tiny_relu.yaml"
    path.write_text(
        "seed: 3\n"
        "network:\n  dims: [12, 7, 4]\n  activation: relu\n"
        "task:\n  dataset: digits\n  classes: [0, 1, 2]\n"
        "rule:\n  terms: bio\n  theta_init: [0.001, 0.0, 0.0]\n"
    )
    cfg = load_config(path)
    assert cfg.name == "tiny_relu" and cfg.seed == 3
    assert cfg.network.dims == (12, 7, 4) and cfg.network.activation == "relu"
    assert cfg.network.beta == 10.0  # untouched defaults stay
    assert cfg.task.classes == (0, 1, 2) and cfg.task.dataset == "digits"
    assert cfg.rule.theta_init == (0.001, 0.0, 0.0)


def test_key_value_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: mine\nes:\n  population_size: 8\n")
    cfg = load_config(path, ["es.population_size=32", "network.dims=[12, 8, 5]", "rule.terms=0,2,9",
                             "task.relabel=true", "network.feedback=bp", "rule.l1=0.01"])
    assert cfg.name == "mine" and cfg.es.population_size == 32
    assert cfg.network.dims == (12, 8, 5) and cfg.rule.terms == "0,2,9"
    assert cfg.task.relabel is True and cfg.network.feedback == "bp" and cfg.rule.l1 == 0.01


def test_comma_separated_tuple_override():
    assert load_config(None, ["network.dims=12,7,4"]).network.dims == (12, 7, 4)


def test_parse_override_nests_keys():
    assert parse_override("a.b.c=3") == {"a": {"b": {"c": 3}}}
    with pytest.raises(ConfigError, match="must look like key=value, e.g. es.population_size=32"):
        parse_override("es.population_size")


@pytest.mark.parametrize("override, key, value", [("rule.l1=1e-4", "l1", 1e-4), ("adam.lr=1e-3", "lr", 1e-3)])
def test_exponent_floats_are_accepted(override, key, value):
    cfg = load_config(None, [override])
    assert getattr(cfg.rule if key == "l1" else cfg.adam, key) == value


def test_exponent_floats_in_yaml_file(tmp_path):
    path = tmp_path / "bio.yaml"
    path.write_text("rule:\n  terms: bio\n  theta_init: [1e-3, 0, 0]\n")
    assert load_config(path).rule.theta_init == (1e-3, 0.0, 0.0)


@pytest.mark.parametrize("override, key", [("es.popsize=3", "es.popsize"), ("foo=1", "foo"),
                                           ("network.depth=3", "network.depth")])
def test_unknown_key_is_named(override, key):
    with pytest.raises(ConfigError, match=rf"unknown config key\(s\) {key}; known keys"):
        load_config(None, [override])


def test_unknown_key_in_file_lists_known_keys(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("task:\n  kshot: 5\n")
    with pytest.raises(ConfigError, match="task.kshot.*k_shot"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("steps=abc", "'steps' must be int, got 'abc'"),
        ("steps=2.5", "'steps' must be int"),
        ("seed=true", "'seed' must be int"),
        ("task.download=maybe", "'task.download' must be bool"),
        ("network.dims=[12, x, 4]", r"'network.dims\[1\]' must be int"),
        ("rule.l1=[1, 2]", "'rule.l1' must be float"),
        ("network=3", "'network' is a section"),
    ],
)
def test_wrong_type_names_key_and_type(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_theta_init_length_must_match_terms():
    with pytest.raises(ConfigError, match=r"rule.theta_init has 1 values but the rule searches 3: 3 terms \[0, 2, 9\]"):
        load_config(None, ["rule.terms=bio", "rule.theta_init=[0.5]"])


def test_theta_init_per_layer_takes_one_block_or_every_coordinate():
    base = ["rule.terms=bio", "rule.per_layer=true", "network.dims=[4,3,2]"]
    assert load_config(None, [*base, "rule.theta_init=[1,2,3]"]).rule.theta_init == (1, 2, 3)
    assert len(load_config(None, [*base, "rule.theta_init=[1,2,3,4,5,6]"]).rule.theta_init) == 6
    with pytest.raises(ConfigError, match=r"has 4 values but the rule searches 6: .* per layer × 2 layers "
                                          r"\(or 3, one block broadcast to every layer\)"):
        load_config(None, [*base, "rule.theta_init=[1,2,3,4]"])


@pytest.mark.parametrize("override, message", [
    (["rule.feedback_terms=kp", "network.feedback=bp"], r"network.feedback=bp has none"),
    (["rule.feedback_terms=hebb,nope"], r"rule.feedback_terms: unknown feedback term 'nope'; use none, kp, all"),
    (["rule.feedback_terms=kp", "es.compile=true"], r"es.compile=true fuses the paper's ten terms only"),
    (["rule.terms=generated", "es.compile=true"], r"set es.compile=false"),
    (["rule.per_layer=true", "es.compile=true", "es.cuda_graph=true", "device=cuda"], r"Inductor or C\+\+ step only"),
    (["es.term_scale=[1,2,3]"], r"es.term_scale needs 10 values .* or 34"),
])
def test_new_rule_spaces_refuse_what_they_cannot_do(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


@pytest.mark.parametrize(
    "override, message",
    [
        ("network.activation=swish", "unknown network.activation 'swish'; choose one of: softplus"),
        ("network.feedback=kwta", "unknown network.feedback 'kwta'; choose one of: fa, bp, dfa"),
        ("es.algorithm=ga", "unknown es.algorithm"),
        ("outer=sgd", "unknown outer"),
        ("dtype=float16", "unknown dtype"),
    ],
)
def test_unknown_choice_lists_the_choices(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize("spec", ["hebbian", "0,41"])
def test_unknown_rule_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="rule.terms"):
        load_config(None, [f"rule.terms={spec}"])


def test_unknown_rule_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="unknown rule 'hebbian'; use one of fa, bp, bio"):
        load_config(None, ["rule.terms=hebbian"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("network.dims=[12]", "network.dims must be ≥ 2 positive widths"),
        ("network.dims=[12, 0, 4]", "network.dims must be ≥ 2 positive widths"),
        ("task.n_way=0", r"task.n_way must be ≥ 1"),
        ("steps=0", "steps must be ≥ 1"),
        ("final_eval_tasks=0", "final_eval_tasks must be ≥ 1 .*eval_every=0"),
        ("eval_tasks=0", "eval_tasks must be ≥ 1"),
        ("es.population_size=1", "es.population_size must be ≥ 2"),
        ("es.term_scale=[1, 2]", "es.term_scale needs 10 values"),
        ("rule.l1=-0.5", "rule.l1 must be ≥ 0"),
    ],
)
def test_out_of_range_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_relabel_needs_enough_outputs():
    with pytest.raises(ConfigError, match="task.relabel needs ≥ n_way=5 outputs"):
        load_config(None, ["network.dims=[12, 4]", "task.relabel=true"])


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found; see the YAML files in configs/"):
        load_config(tmp_path / "absent.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_dict_roundtrip_through_yaml():
    cfg = load_config(None, ["name=rt", "network.dims=[12, 7, 4]", "rule.terms=bio", "rule.theta_init=[0.5, 0, 0]",
                             "task.classes=[1, 4]", "es.term_scale=[1, 1, 1, 1, 1, 1, 1, 1, 1, 2]"])
    plain = config_to_dict(cfg)
    assert plain["network"]["dims"] == [12, 7, 4] and isinstance(plain["task"]["classes"], list)
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(plain))) == cfg
    assert config_from_dict(config_to_dict(PaperExperimentConfig())) == PaperExperimentConfig()


def test_small_theta_survives_the_roundtrip_unrounded():
    cfg = load_config(None, ["rule.terms=bio", "rule.theta_init=[0.0012345678901234, -0.054, -0.0065]"])
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg))))
    assert again.rule.theta_init == (0.0012345678901234, -0.054, -0.0065)
