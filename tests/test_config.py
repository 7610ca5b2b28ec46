"""Run configs: defaults, file overrides, --set overrides, and one test per kind of config error
(each message names the file, the key and the allowed values)."""
from pathlib import Path

import pytest

from ember.cli.config import ConfigError, TrainConfig, load_config, parse_config

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.toml"))
MLP = {"model": {"zoo": "mlp"}}


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "run.toml"
    p.write_text(text)
    return p


def error(raw: dict, overrides=()) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "cfg.toml", list(overrides))
    msg = str(e.value)
    assert msg.startswith("cfg.toml: "), msg  # every message names the file
    return msg


def test_examples_parse():
    assert {p.name for p in EXAMPLES} >= {"digits_mlp.toml", "digits_cnn.toml", "fashion_mnist_cnn.toml",
                                          "cifar10_resnet20.toml", "char_lstm.toml", "gpt_shakespeare.toml"}
    for p in EXAMPLES:
        cfg = load_config(p)
        assert cfg.source == str(p) and cfg.train.out == f"runs/{p.stem}"


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, '[model]\nzoo = "mlp"\n[train]\nepochs = 3\n'))
    assert cfg.train.epochs == 3 and cfg.train.batch_size == TrainConfig().batch_size  # default kept
    assert cfg.optimizer.name == "adam" and cfg.data.name == "digits"
    cfg = parse_config(MLP, "cfg.toml", ["epochs=1", "optimizer.lr=1", "data.name=mnist",
                                         "model.args.hidden=[8, 4]", 'train.out="a b"'])
    assert cfg.train.epochs == 1 and cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    assert cfg.data.name == "mnist" and cfg.model.args == {"hidden": [8, 4]} and cfg.train.out == "a b"
    assert cfg.to_dict()["optimizer"]["lr"] == 1.0


def test_layers_list(tmp_path):
    p = write(tmp_path, '[[model.layers]]\ntype = "Flatten"\n[[model.layers]]\ntype = "Linear"\n'
                        'in_features = 64\nout_features = 10\n')
    cfg = load_config(p)
    assert [layer["type"] for layer in cfg.model.layers] == ["Flatten", "Linear"]


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"run\.toml: not valid TOML"):
        load_config(write(tmp_path, "[model\nzoo = 1"))


def test_unknown_section():
    assert "unknown section [optimiser]; allowed: model, data, optimizer, schedule, train" in \
        error({**MLP, "optimiser": {}})


def test_unknown_key():
    msg = error({**MLP, "train": {"epoch": 3}})
    assert "[train] unknown key 'epoch'; allowed: epochs, batch_size" in msg


def test_wrong_type():
    assert "[optimizer] lr must be a number, got 'fast' (string)" in error({**MLP, "optimizer": {"lr": "fast"}})
    assert "[train] epochs must be an integer, got True (boolean)" in error({**MLP, "train": {"epochs": True}})
    assert "[train] epochs must be an integer, got 1.5" in error({**MLP, "train": {"epochs": 1.5}})
    assert "[schedule] milestones must be an array of integers" in error({**MLP, "schedule": {"milestones": [1.5]}})
    assert "data must be a table [data]" in error({**MLP, "data": 3})


def test_value_not_allowed():
    msg = error({**MLP, "optimizer": {"name": "adamx"}})
    assert "[optimizer] name = 'adamx' is not one of the allowed values: sgd, adam, adamw, rmsprop, adagrad" in msg
    assert "allowed values: digits, mnist, fashion_mnist, cifar10, text" in error({**MLP, "data": {"name": "imagenet"}})
    assert "[train] epochs must be >= 1" in error({**MLP, "train": {"epochs": 0}})


def test_missing_fields():
    assert "needs exactly one of zoo" in error({"model": {}})
    assert "needs exactly one of zoo" in error({})  # no model at all
    assert "not both" in error({"model": {"zoo": "mlp", "layers": [{"type": "ReLU"}]}})
    assert "[data] path is missing" in error({**MLP, "data": {"name": "text"}})
    msg = error({"model": {"layers": [{"type": "Linear", "in_features": 3}]}})
    assert "model.layers[0]: layer Linear is missing required argument(s) out_features" in msg
    assert "missing key 'type'" in error({"model": {"layers": [{"in_features": 3}]}})


def test_unknown_layer():
    msg = error({"model": {"layers": [{"type": "ReLU"}, {"type": "Conv3d"}]}})
    assert "model.layers[1]: unknown layer type 'Conv3d'; allowed: " in msg
    assert "Conv2d" in msg and "Linear" in msg and "CrossEntropyLoss" not in msg


def test_layer_and_zoo_arguments():
    msg = error({"model": {"layers": [{"type": "Linear", "in_features": 3, "out_feature": 2}]}})
    assert "layer Linear has no argument 'out_feature'; allowed: in_features, out_features, bias" in msg
    msg = error({"model": {"layers": [{"type": "Linear", "in_features": 3, "out_features": 2.5}]}})
    assert "layer Linear argument 'out_features' must be an integer, got 2.5" in msg
    assert "zoo = 'lenet' is not a zoo model; allowed: mlp, lenet5" in error({"model": {"zoo": "lenet"}})
    msg = error({"model": {"zoo": "mlp", "args": {"hiden": [3]}}})
    assert "[model] args: zoo model mlp has no argument 'hiden'; allowed: in_features, hidden" in msg
    assert "argument 'hidden' must be an array of integers, got 3" in error({"model": {"zoo": "mlp", "args": {"hidden": 3}}})
    assert "args are for a zoo model" in error({"model": {"layers": [{"type": "ReLU"}], "args": {"x": 1}}})


def test_set_errors():
    assert "--set 'epochs': expected key=value" in error(MLP, ["epochs"])
    assert "--set name: it is a key of [data], [optimizer], [schedule]; write section.name" in error(MLP, ["name=x"])
    assert "--set colour: no section has it" in error(MLP, ["colour=red"])
    assert "[train] unknown key 'epoch'" in error(MLP, ["train.epoch=1"])
    assert "[train] epochs must be an integer" in error(MLP, ["epochs=two"])  # a bare word is a string


def test_validation_comes_from_training_data_not_the_test_set():
    from ember.cli.config import Config
    from ember.cli.train import _split_validation
    cfg = Config()
    train, val = _split_validation(list(range(100)), cfg)
    assert len(train) == 90 and list(val) == list(range(90, 100))
    cfg.train.validate = False
    assert _split_validation(list(range(100)), cfg) == (list(range(100)), None)
