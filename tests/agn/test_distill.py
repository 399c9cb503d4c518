"""Distillation from the exact network's logits during approximate retraining."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agn.config import ConfigError, TrainConfig
from agn.layers import approx_layers, approximate_, calibrate, fold_bn, set_mode
from agn.models import build_model
from agn.training.module import DISTILL_TEMPERATURE, AGNModule, exact_teacher


def _approx_model():
    torch.manual_seed(0)
    m = build_model("lenet5", 1, 8)
    fold_bn(m)
    x = torch.randn(32, 1, 8, 8)
    approximate_(m, {n: "marlin:200" for n, _ in approx_layers(m)})
    calibrate(m, [x], 1)
    set_mode(m, "approx")
    return m, x


def test_teacher_is_the_exact_frozen_model_outside_the_state_dict():
    m, x = _approx_model()
    teacher = exact_teacher(m)
    assert all(layer.spec == "exact" for _, layer in approx_layers(teacher))
    assert all(layer.spec == "marlin:200" for _, layer in approx_layers(m))
    assert not any(p.requires_grad for p in teacher.parameters())
    module = AGNModule(m, "retrain", teacher=teacher, distill=0.5)
    assert set(module.state_dict()) == set(AGNModule(m, "retrain").state_dict())


def test_distilled_loss_mixes_cross_entropy_and_kl():
    m, x = _approx_model()
    y = torch.randint(0, 10, (len(x),))
    teacher = exact_teacher(m)
    d, t = 0.25, DISTILL_TEMPERATURE
    module = AGNModule(m, "retrain", teacher=teacher, distill=d)
    module.log = lambda *a, **k: None
    m.eval()  # no dropout: the two forwards below see the same logits
    loss = module.training_step((x, y), 0)
    with torch.no_grad():
        s, tl = m(x), teacher(x)
    kl = F.kl_div(F.log_softmax(s / t, 1), F.log_softmax(tl / t, 1), reduction="batchmean",
                  log_target=True) * t * t
    assert float(loss) == pytest.approx(float((1 - d) * F.cross_entropy(s, y) + d * kl),
                                        rel=1e-5)
    plain = AGNModule(m, "retrain")
    plain.log = lambda *a, **k: None
    assert float(plain.training_step((x, y), 0)) == pytest.approx(
        float(F.cross_entropy(s, y)), rel=1e-6)


def test_bad_distillation_weights_are_refused():
    m, _ = _approx_model()
    with pytest.raises(ValueError, match="needs a teacher"):
        AGNModule(m, "retrain", distill=0.5)
    with pytest.raises(ConfigError, match="retrain_distill"):
        TrainConfig.from_dict({"retrain_distill": 1.5})
