"""Models: shapes, the MARLIN network's geometry, explicit quantization points, registry errors."""
import pytest
import torch
from torch import nn

from agn.layers import approx_layers, calibrate, fold_bn, set_mode
from agn.models import MODELS, build_model
from agn.models.resnet import ShortcutA
from agn.quant import ActQuant

torch.set_num_threads(1)

SHAPES = {"lenet5": (1, 28), "marlin_mnist": (1, 28)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_in_every_quantized_mode_with_bound_quantizers(name):
    cin, size = SHAPES.get(name, (3, 32))
    torch.manual_seed(0)
    model = build_model(name, cin, size, num_classes=7)
    x = torch.randn(2, cin, size, size)
    assert model(x).shape == (2, 7)
    fold_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    calibrate(model, [x], 1)
    quantizers = {id(m) for m in model.modules() if isinstance(m, ActQuant)}
    for lname, layer in approx_layers(model):
        assert id(layer.input_quant) in quantizers, lname  # an explicit module of the model
        assert "act_in" not in layer._modules
    for mode in ("quant", "noise"):
        set_mode(model, mode)
        model.eval()
        assert model(x).shape == (2, 7)
    assert all(layer.last_macs > 0 for _, layer in approx_layers(model))


def test_marlin_mnist_geometry():
    model = build_model("marlin_mnist", 1, 28)
    layers = approx_layers(model)
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0]) for _, m in layers[:-1]]
    assert convs == [(1, 3, 7), (3, 8, 5), (8, 10, 3), (10, 16, 3), (16, 24, 3)]
    fc = layers[-1][1]
    assert (fc.in_features, fc.out_features) == (216, 10)
    assert all(m.bias is None for _, m in layers)
    pools = [(m.kernel_size, m.stride, m.padding) for m in model.modules()
             if isinstance(m, nn.MaxPool2d)]
    assert pools == [(3, 2, 1), (3, 2, 1), (3, 2, 0)]
    macs = [m.macs(s) for (_, m), s in zip(layers, [(1, 1, 28, 28), (1, 3, 28, 28),
                                                     (1, 8, 14, 14), (1, 10, 14, 14),
                                                     (1, 16, 7, 7), (1, 216)])]
    assert macs == [3 * 49 * 784, 8 * 75 * 784, 10 * 72 * 196, 16 * 90 * 196, 24 * 144 * 49,
                    2160]


def test_lenet_fits_8x8_and_28x28():
    for size, flat in ((8, 64), (28, 400)):
        model = build_model("lenet5", 1, size)
        assert approx_layers(model)[2][1].in_features == flat
        assert model(torch.randn(3, 1, size, size)).shape == (3, 10)


@pytest.mark.parametrize("depth,convs", [(8, 7), (14, 13), (20, 19), (32, 31), (56, 55)])
def test_resnet_depths(depth, convs):
    model = build_model(f"resnet{depth}", 3, 32)
    assert len(approx_layers(model)) == convs + 1


def test_option_a_shortcut_subsamples_and_pads_channels_with_zero():
    x = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).view(2, 4, 4, 4)
    y = ShortcutA(4, 8, 2)(x)
    assert y.shape == (2, 8, 2, 2)
    assert torch.equal(y[:, 2:6], x[:, :, ::2, ::2])
    assert not y[:, :2].any() and not y[:, 6:].any()


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown; known models: lenet5"):
        build_model("vgg", 3, 32)
    with pytest.raises(ValueError, match="6n\\+2"):
        MODELS["resnet8"].func(depth=10)
    with pytest.raises(ValueError, match="too small"):
        build_model("marlin_mnist", 1, 4)


def test_deepcopy_and_pickle_keep_layers_bound_to_their_own_quantizers():
    import copy
    import io

    model = build_model("resnet8", 1, 28)
    fold_bn(model)
    calibrate(model, [torch.randn(2, 1, 28, 28)], 1)
    clone = copy.deepcopy(model)
    assert clone.blocks[0].branch[0].input_quant is clone.stem[3]
    assert clone.blocks[0].branch[0].input_quant is not model.stem[3]
    buf = io.BytesIO()
    torch.save(clone, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert loaded.fc.input_quant is loaded.pool_quant


def _integer_weights(model):
    return {n: layer._weight_ints() for n, layer in approx_layers(model)}


def test_a_checkpoint_carries_per_channel_so_any_rebuilt_model_has_the_same_integer_weights():
    torch.manual_seed(0)
    built = build_model("lenet5", 1, 28)
    assert [layer.per_channel for _, layer in approx_layers(built)][-2:] == [True, False]
    state = built.state_dict()
    rebuilt = MODELS["lenet5"](in_channels=1, input_size=28, num_classes=10)  # no build_model
    assert approx_layers(rebuilt)[-1][1].per_channel  # the class alone defaults to per channel
    rebuilt.load_state_dict(state)
    assert [layer.per_channel for _, layer in approx_layers(rebuilt)] == \
        [layer.per_channel for _, layer in approx_layers(built)]
    want, got = _integer_weights(built), _integer_weights(rebuilt)
    for name in want:
        assert torch.equal(want[name][0], got[name][0]) and torch.equal(want[name][1],
                                                                         got[name][1]), name
    # a checkpoint written before per_channel was saved keeps each model's own setting
    old = {k: ({"spec": v["spec"]} if k.endswith("_extra_state") else v) for k, v in state.items()}
    again = build_model("lenet5", 1, 28)
    again.load_state_dict(old)
    assert not approx_layers(again)[-1][1].per_channel
    plain = MODELS["lenet5"](in_channels=1, input_size=28, num_classes=10)
    plain.load_state_dict(old)
    assert approx_layers(plain)[-1][1].per_channel
    bad = {**state, f"{approx_layers(built)[-1][0]}._extra_state": {"spec": "exact",
                                                                     "per_channel": "no"}}
    with pytest.raises(ValueError, match="per_channel: expected a bool, got 'no'"):
        plain.load_state_dict(bad)
