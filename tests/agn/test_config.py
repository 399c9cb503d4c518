"""The typed, versioned configuration: defaults, type and range errors naming the field,
migration of version-1 documents, the configs/ folder, checks against catalogs and data."""
import random

import numpy as np
import pytest
import torch
import yaml

from agn.config import (
    CONFIG_VERSION,
    ConfigError,
    PipelineConfig,
    TrainConfig,
    check_pipeline,
    check_train,
    document,
    load_config,
    load_pipeline_config,
    migrate,
    shipped_configs,
)
from agn.seeding import seeded
from agn.threads import torch_threads

# what the code before the typed configuration recorded in pipeline.json (PipelineConfig.quick())
V1_PIPELINE = {
    "dataset": "digits", "data_args": {"batch_size": 32}, "model": "lenet5", "catalog": "marlin:*",
    "lam": 0.2, "sigma_init": 0.1, "sigma_max": 1.0, "sigma_lr": 0.05,
    "train": {"float_stage": {"lr": 0.05, "milestones": [20]}, "qat": {"lr": 0.005},
              "noise_stage": {"lr": 0.005}, "retrain": {"lr": 0.001}},
    "seed": 0, "epochs": [12, 2, 3, 1], "n_fields": 16, "stats_samples": 128, "pop_size": 10,
    "n_gen": 3, "init": "seeded", "baseline": False, "val_samples": 0, "candidate_epochs": 0,
    "candidate_batches": 0, "max_loss": 0.01, "scales": [0.5, 2.0], "uniform_points": 6,
    "deploy_inputs": 2}

# what it recorded as RUN/<stage>/config.yaml (TrainConfig.to_dict(), flat, catalog unset)
V1_TRAIN_YAML = """\
model: lenet5
data: digits
data_args:
  batch_size: 64
seed: 3
float_stage:
  epochs: 30
  lr: 0.05
  optimizer: sgd
  momentum: 0.9
  weight_decay: 0.0001
  milestones:
  - 20
  gamma: 0.1
qat:
  epochs: 10
  lr: 0.005
  optimizer: sgd
  momentum: 0.9
  weight_decay: 0.0001
  milestones: []
  gamma: 0.1
noise_stage:
  epochs: 10
  lr: 0.005
  optimizer: sgd
  momentum: 0.9
  weight_decay: 0.0001
  milestones: []
  gamma: 0.1
retrain:
  epochs: 5
  lr: 0.001
  optimizer: sgd
  momentum: 0.9
  weight_decay: 0.0001
  milestones: []
  gamma: 0.1
noise:
  lam: 0.2
  sigma_init: 0.1
  sigma_max: 0.5
  sigma_lr: null
calib_batches: 10
catalog: null
assignment: null
limit_train_batches: 1.0
limit_val_batches: 1.0
progress_bar: true
threads: 1
"""


def test_version_1_pipeline_json_migrates_to_the_quick_configuration():
    assert load_pipeline_config([V1_PIPELINE]) == PipelineConfig.quick()
    older = {k: v for k, v in V1_PIPELINE.items()
             if k not in ("candidate_epochs", "candidate_batches")}
    assert load_pipeline_config([older]) == PipelineConfig.quick()  # fields added later: defaults
    assert migrate(document(PipelineConfig.quick())) == PipelineConfig.quick().to_dict()


def test_version_1_training_config_yaml_loads_unchanged(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(V1_TRAIN_YAML)
    cfg = load_config(path)
    assert (cfg.seed, cfg.catalog, cfg.threads, cfg.noise.sigma_max, cfg.noise.sigma_lr) == \
        (3, None, 1, 0.5, None)
    assert cfg.float_stage.milestones == (20,)
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(document(cfg)))
    assert yaml.safe_load(again.read_text())["version"] == CONFIG_VERSION
    assert load_config(again) == cfg


def test_one_default_per_field_and_the_default_pipeline_needs_no_file():
    assert PipelineConfig().train == TrainConfig()
    assert TrainConfig().noise.sigma_max == 1.0  # the default pipeline's value
    assert load_pipeline_config() == PipelineConfig()
    assert load_pipeline_config(["digits_lenet5"]) == PipelineConfig()
    assert {"digits_lenet5", "marlin_mnist", "resnet8_fashion_mnist"} <= set(shipped_configs())


@pytest.mark.parametrize("data, message", [
    ({"search": {"pop_size": "ten"}}, "search.pop_size: expected an integer, got 'ten'"),
    ({"search": {"pop_size": -5}}, "search.pop_size: expected a population >= 2, got -5"),
    ({"search": {"val_samples": -5}}, "search.val_samples: expected a count >= 0, got -5"),
    ({"search": {"init": "sobol"}}, "search.init: expected 'seeded' or 'random'"),
    ({"search": {"max_loss": 1.5}}, r"search.max_loss: expected a fraction in \[0, 1\)"),
    ({"search": {"granularity": "kernels"}},
     "search.granularity: expected 'layer', 'filter' or 'kernel'"),
    ({"search": {"in_group": 0}}, "search.in_group: expected an input group size >= 1, got 0"),
    ({"train": {"float_stage": {"epochs": [5]}}},
     r"train.float_stage.epochs: expected an integer, got \[5\]"),
    ({"train": {"qat": {"milestones": 5}}},
     "train.qat.milestones: expected a list of integers, got 5"),
    ({"train": {"noise": {"sigma_max": 0}}}, "train.noise.sigma_max: expected a sigma cap > 0"),
    ({"train": {"progress_bar": "yes"}}, "train.progress_bar: expected true or false"),
    ({"train": {"float": {"lr": 0.1}}}, "train.float: unknown field"),
    ({"match": {"scales": [0.5, -1]}}, "match.scales: expected factors > 0"),
    ({"train": "lenet5"}, "train: expected a mapping of TrainConfig fields"),
    ({"version": 9}, "version: expected a configuration version 1..2, got 9"),
    ({"pop_size": 4, "version": 2}, "pop_size: unknown field"),
    ({"epochs": 5}, "epochs: expected 4 epoch counts"),
])
def test_bad_values_name_the_field_the_value_and_what_is_expected(data, message):
    with pytest.raises(ConfigError, match=message):
        load_pipeline_config([data])


def test_bad_files_are_one_line_errors(tmp_path):
    cases = {"list.yaml": "[1, 2]\n", "scalar.yaml": "5\n", "syntax.yaml": "a: [1,\n",
             "type.yaml": "search:\n  pop_size: ten\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError) as info:
            load_pipeline_config([tmp_path / name])
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="expected a mapping of configuration fields"):
        load_pipeline_config([tmp_path / "list.yaml"])
    with pytest.raises(ConfigError, match="not valid YAML at line 2"):
        load_pipeline_config([tmp_path / "syntax.yaml"])
    with pytest.raises(ConfigError, match="no shipped config of that name; shipped: "):
        load_pipeline_config(["nosuchconfig"])


@pytest.mark.parametrize("train, message", [
    ({"catalog": "marlin:300"}, "train.catalog: multiplier spec 'marlin:300'"),
    ({"model": "lenet6"}, "train.model: expected one of .*lenet5"),
    ({"data": "imagenet"}, "train.data: expected one of digits"),
    ({"data_args": {"bogus": 1}}, "train.data_args.bogus: unknown argument of the 'digits'"),
    ({"data_args": {"batch_size": "x"}}, "train.data_args.batch_size: expected an integer"),
    ({"data_args": {"val_fraction": 2.0}}, "train.data_args: .*val_fraction must be in"),
    ({"data": "mnist"}, "train.data_args.root: required by dataset 'mnist'"),
    ({"data": "mnist", "data_args": {"root": "/no/such/dir"}},
     "train.data_args.root: data directory '/no/such/dir' does not exist"),
])
def test_checks_resolve_catalogs_models_and_data(train, message):
    with pytest.raises(ConfigError, match=message):
        check_pipeline(load_pipeline_config([{"train": train}]))


def test_data_directory_without_files_is_refused_unless_they_are_downloaded(tmp_path):
    cfg = TrainConfig(data="cifar10", data_args={"root": str(tmp_path), "download": False})
    with pytest.raises(ConfigError, match="data_batch_1, .* not found and download is off"):
        check_train(cfg)
    check_train(TrainConfig(data="cifar10", data_args={"root": str(tmp_path)}))


def test_threads_and_global_rngs_are_restored():
    threads = torch.get_num_threads()
    with torch_threads(threads + 1):
        assert torch.get_num_threads() == threads + 1
    assert torch.get_num_threads() == threads
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = (torch.rand(1), np.random.rand(), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    with seeded(123):
        inside = torch.rand(1)
    assert (torch.rand(1), np.random.rand(), random.random()) == expected
    torch.manual_seed(123)
    assert torch.equal(inside, torch.rand(1))  # Lightning's seeding inside
