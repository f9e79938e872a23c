import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet34

from fpar_models.config import PARTS
from fpar_models.models import build_model, run_model
from fpar_models.models.attention import CamAttention
from fpar_models.models.backbone import ResNet34Features
from fpar_models.models.convlstm import ConvLSTMCell
from fpar_models.models.flow import FlowResNet
from fpar_models.models.heads import OrderPrediction
from fpar_models.presets import PRESETS

from model_helpers import small_config

B, T, S, CLASSES = 2, 4, 64, 6


def batch_for(cfg):
    torch.manual_seed(0)
    return {"rgb": torch.randn(B, T, 3, S, S), "flow": torch.randn(B, 1, 2 * cfg.model.stack_size, S, S),
            "maps": torch.rand(B, T, 2, 2), "label": torch.tensor([0, 5])}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_runs_forward_and_backward(preset):
    cfg = small_config(preset)
    model = build_model(cfg, CLASSES)
    out = run_model(model, batch_for(cfg))
    assert out.logits.shape == (B, CLASSES)
    loss = out.logits.logsumexp(1).sum()
    for head in out.aux.values():
        loss = loss + sum(v.float().mean() for v in head.values() if torch.is_tensor(v) and v.is_floating_point())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(out.logits).all()
    if cfg.uses_rgb:
        assert out.cam.shape == (B, T, S // 32, S // 32)
    expected_heads = {h.kind for h in cfg.model.heads}
    assert set(out.aux) == expected_heads


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_parts_a_config_may_train_are_the_parts_the_model_has(preset):
    """config.PARTS is what a request is validated against; parts() is what the trainer
    unfreezes: a part missing from either is a 422 for a valid request or a KeyError mid-run."""
    cfg = small_config(preset, image_size=32, model={"mem_size": 16})
    assert set(PARTS[cfg.model.arch]) == set(build_model(cfg, CLASSES).parts())


def test_head_output_shapes():
    cfg = small_config("ms-order")
    out = run_model(build_model(cfg, CLASSES), batch_for(cfg))
    assert out.aux["motion_segmentation"]["maps"].shape == (B, T, 2, 2, 2)
    assert out.aux["order_prediction"]["logits"].shape == (B, 12)
    reg = small_config("idt-net")
    assert run_model(build_model(reg, CLASSES), batch_for(reg)).aux["motion_segmentation"]["maps"].shape == (B, T, 2, 2)
    finer = small_config("ms-classification", model={"heads": [{"kind": "motion_segmentation", "attach": "layer3"}]})
    assert run_model(build_model(finer, CLASSES), batch_for(finer)).aux["motion_segmentation"]["maps"].shape == (B, T, 2, 4, 4)
    sd = small_config("static-dynamic")
    out = run_model(build_model(sd, CLASSES), batch_for(sd))
    assert out.aux["static_dynamic"]["logits"].shape == (2 * B, 2)
    assert out.aux["static_dynamic"]["target"].tolist() == [0] * B + [1] * B
    df = small_config("dynamic-filter")
    out = run_model(build_model(df, CLASSES), batch_for(df))
    assert out.aux["dynamic_filter"]["pred"].shape == (B * (T - 1), 3, S // 4, S // 4)


def test_inference_skips_heads():
    cfg = small_config("ms-order")
    model = build_model(cfg, CLASSES).eval()
    assert run_model(model, batch_for(cfg), heads=False).aux == {}


def test_backbone_matches_torchvision_and_exposes_pre_bn_features():
    torch.manual_seed(0)
    ours = ResNet34Features().eval()
    ref = resnet34().eval()
    ref.load_state_dict(ours.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = ours(x)
        expected = torch.nn.Sequential(*list(ref.children())[:-2])(x)
        last = ours.layer4[-1]
        # pre = conv2 output + residual, so BN + ReLU of it, done by hand, gives layer4
        identity_input = ours.layer4[:-1](ours.layer3(ours.layer2(ours.layer1(ours.maxpool(ours.relu(ours.bn1(ours.conv1(x))))))))
        residual = identity_input
        by_hand = F.relu(last.bn2(feats.layer4_pre - residual) + residual)
    assert torch.allclose(feats.layer4, expected, atol=1e-5)
    assert torch.allclose(by_hand, feats.layer4, atol=1e-5)
    assert not torch.allclose(feats.layer4_pre, feats.layer4)


def test_cam_attention_is_a_softmax_over_cells_of_the_top1_class_map():
    fc = torch.nn.Linear(3, 4)
    features = torch.randn(2, 3, 2, 2)
    attended, cam = CamAttention(fc)(features, torch.ones_like(features))
    top1 = fc(features.mean((2, 3))).argmax(1)
    for n in range(2):
        expected = (fc.weight[top1[n]].view(3, 1, 1) * features[n]).sum(0)
        assert torch.allclose(cam[n], expected, atol=1e-6)
        assert torch.allclose(attended[n, 0], F.softmax(expected.flatten(), 0).view(2, 2), atol=1e-6)
    assert torch.allclose(attended.sum((2, 3)), torch.ones(2, 3))


def test_fused_convlstm_equals_per_gate_equations():
    torch.manual_seed(0)
    cell = ConvLSTMCell(5, 3)
    seq = torch.randn(2, 3, 5, 4, 4)
    hs, c_final = cell(seq)
    wx, wh = cell.x2gates.weight.chunk(4), cell.h2gates.weight.chunk(4)
    bx = cell.x2gates.bias.chunk(4)
    h = c = torch.zeros(2, 3, 4, 4)
    for t in range(3):
        gate = [F.conv2d(seq[:, t], wx[k], bx[k], padding=1) + F.conv2d(h, wh[k], padding=1) for k in range(4)]
        i, f, g, o = torch.sigmoid(gate[0]), torch.sigmoid(gate[1]), torch.tanh(gate[2]), torch.sigmoid(gate[3])
        c = f * c + i * g
        h = o * torch.tanh(c)
        assert torch.allclose(hs[:, t], h, atol=1e-5)
    assert torch.allclose(c_final, c, atol=1e-5)


def test_flow_conv1_gets_imagenet_weights_averaged_over_rgb():
    rgb = resnet34().state_dict()
    flow = FlowResNet(CLASSES, channels=10)
    flow.load_imagenet(rgb)
    w = flow.net.conv1.weight
    assert w.shape == (64, 10, 7, 7)
    assert torch.allclose(w[:, 3], rgb["conv1.weight"].mean(1))
    assert torch.equal(flow.net.layer3[0].conv1.weight, rgb["layer3.0.conv1.weight"])


def test_flow_eval_average_of_stacks_equals_average_of_logits():
    torch.manual_seed(0)
    flow = FlowResNet(CLASSES).eval()
    stacks = torch.randn(1, 5, 10, 64, 64)
    with torch.no_grad():
        together = flow(stacks).logits
        apart = torch.stack([flow(stacks[:, k:k + 1]).logits for k in range(5)]).mean(0)
    assert torch.allclose(together, apart, atol=1e-5)


def test_order_prediction_has_twelve_classes_closed_under_reversal():
    perms = OrderPrediction.PERMUTATIONS
    assert len(perms) == 12 == len(set(perms))
    assert all(tuple(reversed(p)) not in perms for p in perms)


def test_feedback_starts_as_identity():
    torch.manual_seed(0)
    plain = small_config("egornn-attention")
    fb = small_config("feedback")
    a, b = build_model(plain, CLASSES).eval(), build_model(fb, CLASSES).eval()
    b.load_state_dict(a.state_dict(), strict=False)
    x = batch_for(plain)
    with torch.no_grad():
        assert torch.allclose(run_model(a, x).logits, run_model(b, x).logits, atol=1e-5)


@pytest.mark.parametrize("size", [96, 112])
def test_sizes_that_are_not_multiples_of_32(size):
    """112 px gives a 4 x 4 grid (ResNet rounds up): heads must agree with the backbone."""
    cfg = small_config("ms-order", image_size=size, model={"heads": [
        {"kind": "motion_segmentation", "attach": "layer3"}, {"kind": "order_prediction"}]})
    grid = -(-size // 16)
    batch = {"rgb": torch.randn(1, 4, 3, size, size)}
    out = run_model(build_model(cfg, CLASSES), batch)
    assert out.aux["motion_segmentation"]["maps"].shape == (1, 4, 2, grid, grid)
    assert out.cam.shape == (1, 4, -(-size // 32), -(-size // 32))
