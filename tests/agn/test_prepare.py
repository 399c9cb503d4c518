"""agn.prepare on models written in plain PyTorch, from prepare to validated host firmware."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deploy
from agn.export import export
from agn.intsim import predict
from agn.layers import ApproxConv2d, ApproxLinear, approx_layers, calibrate, set_mode, set_observe
from agn.preparation import PrepareError, prepare
from agn.quant import ActQuant

CLASSES = 4


# ---- models as users write them ------------------------------------------------------------
class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
        self.fc1 = nn.Linear(12 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # pooling before the ReLU, as often written
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8))
        down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2, down), BasicBlock(16, 16))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class VGG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 2 * 2, 32), nn.ReLU(True), nn.Dropout(),
            nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, CLASSES))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        x = x.view(x.size(0), -1)
        return self.classifier(x)


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                          nn.Hardtanh(0.0, 6.0, inplace=True)),
            InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 4),
            InvertedResidual(12, 12, 1, 4),
            nn.Sequential(nn.Conv2d(12, 32, 1, bias=False), nn.BatchNorm2d(32),
                          nn.ReLU6(inplace=True)))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, CLASSES))

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = x.reshape(x.shape[0], -1)
        return self.classifier(x)


# ---- the flow --------------------------------------------------------------------------------
def _data(shape, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(CLASSES, *shape, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return templates[y] + 0.6 * torch.randn(n, *shape, generator=g), y


def _train(model, x, y, steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for i in range(steps):
        idx = torch.arange(i * 32, i * 32 + 32) % len(x)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def _prepared(build, shape):
    torch.manual_seed(0)
    x, y = _data(shape)
    model = build()
    _train(model, x, y, 30, 1e-2)  # a float-trained model (BatchNorm statistics included)
    prepared = prepare(model, x[:8])
    calibrate(prepared, [x[:128]], 1)
    set_mode(prepared, "quant")
    _train(prepared, x, y, 10, 1e-3)  # QAT, observers tracking
    set_observe(prepared, False)
    _train(prepared, x, y, 10, 1e-3)  # QAT, observers frozen
    return model, prepared.eval(), x, y


MODELS = {"lenet": (LeNet, (1, 8, 8)), "resnet": (ResNet, (3, 16, 16)),
          "vgg": (VGG, (3, 16, 16)), "mobilenetv2": (MobileNetV2, (3, 16, 16))}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_plain_model_goes_from_prepare_to_validated_firmware(name, tmp_path):
    build, shape = MODELS[name]
    model, prepared, x, y = _prepared(build, shape)
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [n for n, _ in approx_layers(prepared)] == convs  # the user's names, in order
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    net = export(prepared, shape, name)
    assert [layer.name for layer in net.layers] == convs
    xq = prepared.quant_in.to_int(x).to(torch.uint8).numpy()
    with torch.no_grad():
        fq = prepared(x).argmax(1).numpy()
    agree = float(np.mean(predict(net, xq) == fq))
    assert agree >= 0.99, f"{name}: fake-quant and integer predictions agree on {agree:.3f}"
    assert float(np.mean(fq == y.numpy())) > 0.5  # it learned something
    report = deploy.validate(net, xq[:4], tmp_path)
    assert report.ok, f"{name}: {report.mismatches} firmware mismatches"


# ---- structure and refusals ----------------------------------------------------------------
def test_prepare_copies_folds_and_places_quantizers():
    torch.manual_seed(0)
    model = ResNet()
    x, _ = _data((3, 16, 16), n=8)
    with torch.no_grad():
        for m in model.modules():  # non-trivial BatchNorm statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prepared = prepare(model.eval(), x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    assert isinstance(prepared.get_submodule("layer2.0.downsample.0"), ApproxConv2d)
    assert isinstance(prepared.fc, ApproxLinear) and prepared.fc.per_channel is False
    with torch.no_grad():  # float mode, quantizers off: the folded model computes the same
        np.testing.assert_allclose(prepared.eval()(x).numpy(), model(x).numpy(), rtol=1e-4,
                                   atol=1e-4)
    quants = [n for n, m in prepared.named_modules() if isinstance(m, ActQuant)]
    assert quants[0] == "quant_in" and "layer1.0.bn2_q" in quants and "avgpool_q" in quants
    assert prepared.conv1.input_quant is prepared.quant_in
    # max pooling keeps the grid: the block's first conv reads the stem's ReLU quantizer
    assert prepared.get_submodule("layer1.0.conv1").input_quant is prepared.relu_q


def test_prepared_state_dict_round_trips():
    model, prepared, x, _ = _prepared(LeNet, (1, 8, 8))
    again = prepare(model, x[:8])
    again.load_state_dict(prepared.state_dict())
    set_mode(again, "quant")
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), prepared(x))


class _Cat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.cat([y, y], dim=1)  # the line the refusal names


class _Sigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.act = nn.Sigmoid()

    def forward(self, x):
        return self.act(self.conv(x)).flatten(1)


class _SignedPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return F.max_pool2d(self.conv(x), 2).flatten(1)


@pytest.mark.parametrize("cls,match", [
    (_Cat, r"function cat at graph node 'cat' \(.*test_prepare.py:\d+ in forward: "
           r"return torch.cat\(\[y, y\], dim=1\).*no integer IR equivalent"),
    (_Sigmoid, r"module Sigmoid \('act'\) at graph node 'act'.*no integer IR equivalent"),
    (_SignedPool, r"max pooling of a tensor that may be negative"),
])
def test_unmappable_ops_are_refused_at_prepare_time(cls, match):
    with pytest.raises(PrepareError, match=match):
        prepare(cls(), torch.zeros(2, 1, 8, 8))
