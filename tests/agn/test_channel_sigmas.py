"""One learned sigma per output channel: reward, gradients, checkpoint and sigmas.json."""
from __future__ import annotations

import copy
import json
import warnings

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from agn.callbacks import NoiseTraining
from agn.config import ConfigError, load_pipeline_config
from agn.layers import (
    approx_layers,
    calibrate,
    noise_penalty,
    reset_sigmas,
    set_mode,
    sigma_logs,
    sigma_table,
)
from agn.models import build_model
from errormodels import read_sigmas


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = build_model("lenet5", 1, 8, num_classes=3)
    calibrate(m, [torch.randn(32, 1, 8, 8)], 1)
    set_mode(m, "quant")
    m(torch.randn(2, 1, 8, 8))  # records the multiplication counts
    return m


def _set(model, values, per_channel):
    reset_sigmas(model, 0.0, per_channel)
    with torch.no_grad():
        for (_, layer), v in zip(approx_layers(model), values):
            layer.sigma.fill_(v)


@pytest.mark.parametrize("values", [(0.1, 0.1, 0.1, 0.1, 0.1),
                                    (0.0123457, 0.3333333, 1.7, 0.7777777, 0.9999999),
                                    (1e-7, 2.5, 0.2, 0.61, 0.05)])
def test_equal_channel_sigmas_give_exactly_the_per_layer_reward(model, values):
    values = values[:len(approx_layers(model))]
    _set(model, values, per_channel=False)
    layer = noise_penalty(model, sigma_max=1.0)
    _set(model, values, per_channel=True)
    assert all(m.sigma.shape == (m.weight.shape[0],) for _, m in approx_layers(model))
    channel = noise_penalty(model, sigma_max=1.0)
    assert channel.dtype == layer.dtype and channel.item() == layer.item()
    assert [r["sigma"] for r in sigma_table(model)] == \
        pytest.approx(list(values), rel=1e-6)


def test_gradients_reach_every_channel_sigma(model):
    reset_sigmas(model, 0.1, per_channel=True)
    with torch.no_grad():  # spread the channels, all below the reward's cap
        for _, m in approx_layers(model):
            m.sigma.copy_(torch.linspace(0.05, 0.9, m.sigma.numel()))
    set_mode(model, "noise")
    model.train()
    torch.manual_seed(1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    loss = F.cross_entropy(model(x), y) - 0.2 * noise_penalty(model, sigma_max=1.0)
    loss.backward()
    for name, m in approx_layers(model):
        g = m.sigma.grad
        assert g is not None and g.shape == (m.weight.shape[0],), name
        assert torch.isfinite(g).all() and (g != 0).all(), name
        assert len(set(g.tolist())) > 1, name  # each channel's own gradient
    logs = sigma_logs(model)
    name = approx_layers(model)[0][0]
    assert logs[f"sigma_min/{name}"] == pytest.approx(0.05)
    assert logs[f"sigma_max/{name}"] == pytest.approx(0.9)


def test_channel_sigmas_survive_a_checkpoint_into_a_model_built_per_layer(model):
    reset_sigmas(model, 0.1, per_channel=True)
    with torch.no_grad():
        for _, m in approx_layers(model):
            m.sigma.copy_(torch.rand(m.sigma.shape))
    fresh = copy.deepcopy(model)
    reset_sigmas(fresh, 0.1)
    before = [id(m.sigma) for _, m in approx_layers(fresh)]
    fresh.load_state_dict(model.state_dict())
    for (_, a), (_, b) in zip(approx_layers(model), approx_layers(fresh)):
        assert torch.equal(a.sigma, b.sigma)
    assert [id(m.sigma) for _, m in approx_layers(fresh)] == before  # same parameter objects
    reset_sigmas(model, 0.2)  # and back to one sigma per layer
    fresh.load_state_dict(model.state_dict())
    assert all(m.sigma.dim() == 0 and float(m.sigma.detach()) == pytest.approx(0.2)
               for _, m in approx_layers(fresh))


def test_noise_callback_per_channel_writes_version_2_sigmas(model, tmp_path):
    class User(pl.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 3, (32,),
                                                                              generator=g))
    cb = NoiseTraining(lam=0.5, sigma_init=0.1, per_channel=True)
    deterministic = torch.are_deterministic_algorithms_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False,
                   default_root_dir=str(tmp_path), callbacks=[cb]).fit(
            User(model), train_dataloaders=DataLoader(data, batch_size=16))
    torch.use_deterministic_algorithms(deterministic)
    doc = json.loads((tmp_path / "sigmas.json").read_text())
    assert doc["version"] == 2
    for s, (_, m) in zip(read_sigmas(tmp_path), approx_layers(model)):
        assert s.channel_sigmas == pytest.approx(m.sigma.detach().abs().tolist())
        assert len(s.channel_sigmas) == m.weight.shape[0]
        assert len(set(s.channel_sigmas)) > 1  # the channels learned apart


def test_per_channel_is_a_validated_boolean_set_by_the_pipeline_option():
    from agn.cli import build_parser
    from agn.cli.pipeline import OPTION_FIELDS, option_data

    assert load_pipeline_config([], {}).train.noise.per_channel is False
    args = build_parser("pipeline").parse_args(["pipeline", "--per-channel-sigmas"])
    assert option_data(args, OPTION_FIELDS) == {"train": {"noise": {"per_channel": True}}}
    assert option_data(build_parser("pipeline").parse_args(["pipeline"]), OPTION_FIELDS) == {}
    cfg = load_pipeline_config([], {"train": {"noise": {"per_channel": True}}})
    assert cfg.train.noise.per_channel is True
    with pytest.raises(ConfigError, match="train.noise.per_channel: expected true or false"):
        load_pipeline_config([], {"train": {"noise": {"per_channel": "yes"}}})


def test_a_step_moves_the_mean_of_equal_channel_sigmas_a_sqrt_c_share_of_the_layer_sigma(model):
    """SGD with the sigma groups: from equal channel sigmas, one step on the same batch and noise
    moves each layer's channel mean ``1 / sqrt(C_out)`` of the layer's single sigma's step."""
    from agn.layers import sigma_groups

    steps = {}
    for per_channel in (False, True):
        m = copy.deepcopy(model)
        reset_sigmas(m, 0.1, per_channel)
        set_mode(m, "noise")
        m.train()
        sigmas = [layer.sigma for _, layer in approx_layers(m)]
        opt = torch.optim.SGD(sigma_groups(sigmas, 0.05), lr=0.05)
        torch.manual_seed(3)
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
        (F.cross_entropy(m(x), y) - 0.2 * noise_penalty(m, 1.0)).backward()
        opt.step()
        steps[per_channel] = [(float(s.detach().mean()) - 0.1) * s.numel() ** 0.5
                              for s in sigmas]
    assert steps[True] == pytest.approx(steps[False], rel=1e-4, abs=1e-9)
    assert all(abs(s) > 1e-6 for s in steps[False])
