import os

os.environ["HF_HUB_OFFLINE"] = "1"  # timm must never reach the network

import time
import warnings

import numpy as np
import pytest
import torch

from src.data.transforms import IMAGENET_MEAN, Preprocessing, eval_transform
from src.models import backbones as transfer
from src.models.backbones import (
    BACKBONES,
    BackboneSpec,
    FeatureExtractor,
    TransferModel,
    create_backbone,
    get_backbone_spec,
    get_model_transfer_learning,
    imagenet_class_names,
    imagenet_logits,
    list_backbones,
)
from src.models.lite_weights import (
    BackboneUnavailableError,
    WeightConversionError,
    build_lite_imagenet_model,
    convert_lukemelas_state_dict,
    lite_weights_path,
)

torch.set_num_threads(2)

PLACE_LIKE = {
    "palace", "monastery", "church", "mosque", "castle", "stupa", "pagoda", "dome", "bell cote",
    "boathouse", "triumphal arch",
}


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("tf_efficientnet_lite0")


@pytest.fixture(scope="module")
def transfer_lite0():
    torch.manual_seed(0)
    return get_model_transfer_learning("tf_efficientnet_lite0", n_classes=7)


def test_registry():
    assert list_backbones() == list(BACKBONES)
    assert {"tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "resnet18", "resnet50"} <= set(
        list_backbones()
    )
    assert list_backbones(offline_only=True) == [f"tf_efficientnet_lite{v}" for v in range(3)]
    assert get_backbone_spec("efficientnet_lite1") is BACKBONES["tf_efficientnet_lite1"]
    assert BACKBONES["resnet18"].feature_dim == 512 and BACKBONES["resnet50"].feature_dim == 2048
    assert BACKBONES["resnet18"].preprocessing == Preprocessing(256, 224, IMAGENET_MEAN, interpolation="bilinear")
    with pytest.raises(KeyError, match="tf_efficientnet_lite0"):
        get_backbone_spec("vit_giant")


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_preprocessing_matches_timm(variant):
    import timm
    from timm.data import create_transform, resolve_data_config

    spec = BACKBONES[f"tf_efficientnet_lite{variant}"]
    model = timm.create_model(spec.name, pretrained=False, num_classes=1000)
    config = resolve_data_config({}, model=model)
    prep = spec.preprocessing
    assert config["input_size"] == (3, prep.crop, prep.crop)
    assert config["interpolation"] == prep.interpolation == "bicubic"
    assert tuple(config["mean"]) == prep.mean == (0.5, 0.5, 0.5)
    assert tuple(config["std"]) == prep.std == (0.5, 0.5, 0.5)
    resize = create_transform(**config).transforms[0]
    assert resize.size == prep.resize
    assert spec.feature_dim == model.num_features == 1280


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_weights_load_strictly(variant):
    model = build_lite_imagenet_model(variant)  # load_state_dict(strict=True) inside
    assert not model.training
    state = torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)
    assert torch.equal(model.conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(model.classifier.weight, state["_fc.weight"])
    last = len(state) and max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    assert torch.equal(model.blocks[-1][-1].conv_pwl.weight, state[f"_blocks.{last}._project_conv.weight"])
    assert torch.equal(model.blocks[0][0].conv_pw.weight, state["_blocks.0._project_conv.weight"])


def test_conversion_reports_mismatches():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    state = dict(torch.load(lite_weights_path(0), map_location="cpu", weights_only=True))
    del state["_blocks.3._bn1.running_var"]
    state["_fc.bias"] = torch.zeros(1001)
    state["_extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightConversionError) as info:
        convert_lukemelas_state_dict(state, model)
    message = str(info.value)
    assert "blocks.2.0.bn2.running_var" in message  # lite0 stages [1, 2, 2, ...]: flat block 3 = stage 2, index 0
    assert "classifier.bias: checkpoint (1001,) vs model (1000,)" in message
    assert "_extra.weight" in message


def test_feature_extractor_and_imagenet_head(lite0):
    model, spec = lite0
    assert isinstance(model, FeatureExtractor) and isinstance(spec, BackboneSpec)
    assert not model.training
    x = torch.randn(2, 3, spec.preprocessing.crop, spec.preprocessing.crop)
    with torch.no_grad():
        features = model(x)
        logits = imagenet_logits(model, x)
        f2, l2 = model.features_and_imagenet_logits(x)
    assert features.shape == (2, spec.feature_dim)
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(f2, features)
    torch.testing.assert_close(l2, logits)
    torch.testing.assert_close(model.imagenet_head(features), logits)


def test_imagenet_class_names():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and "palace" in names


def test_real_photo_gets_place_like_imagenet_label(lite0):
    from sklearn.datasets import load_sample_image

    model, spec = lite0
    image = torch.from_numpy(np.array(load_sample_image("china.jpg"))).permute(2, 0, 1)
    x = eval_transform(spec.preprocessing)(image).unsqueeze(0)
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        probs = model.imagenet_logits(x).softmax(-1)[0]
    names = imagenet_class_names()
    top5 = [names[i] for i in probs.topk(5).indices.tolist()]
    # observed: palace, bell cote, monastery, lakeside, boathouse
    assert top5[0] in PLACE_LIKE, top5
    assert len(PLACE_LIKE.intersection(top5)) >= 3, top5


def test_resnet18_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # empty hub cache
    with pytest.raises(BackboneUnavailableError, match="tf_efficientnet_lite0"):
        create_backbone("resnet18", allow_download=False)
    if transfer._reachable("https://download.pytorch.org/", 3.0):
        pytest.skip("network reachable: would download real weights")
    start = time.monotonic()
    with pytest.raises(BackboneUnavailableError, match="tf_efficientnet_lite0") as info:
        create_backbone("resnet18")
    assert time.monotonic() - start < 10
    assert isinstance(info.value, RuntimeError)
    assert "resnet18-f37072fd.pth" in str(info.value)


def test_resnet18_uses_hub_cache(tmp_path, monkeypatch):
    import torchvision

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), checkpoints / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(transfer, "_reachable", lambda *a: pytest.fail("must not touch the network"))
    model, spec = create_backbone("resnet18")
    assert spec.feature_dim == 512
    torch.testing.assert_close(model.imagenet_head.weight, reference.fc.weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (1, 512)
        torch.testing.assert_close(model.imagenet_logits(x), reference.eval()(x))


def test_transfer_model_shapes_and_freezing(transfer_lite0):
    model = transfer_lite0
    assert isinstance(model, TransferModel)
    assert model.spec is BACKBONES["tf_efficientnet_lite0"]
    assert model.preprocessing == model.spec.preprocessing
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    assert model.head.in_features == 1280 and model.head.out_features == 7
    model.train()
    assert model.training and model.head.training
    assert not model.backbone.training and not any(m.training for m in model.backbone.modules())
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 7)


def test_transfer_model_unfrozen():
    model = get_model_transfer_learning("efficientnet_lite0", n_classes=3, freeze=False)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert model.backbone.training


def test_transfer_model_scripts(transfer_lite0):
    model = transfer_lite0.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in torch 2.x
        scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        eager = model(x)
        torch.testing.assert_close(scripted(x), eager)
        torch.testing.assert_close(scripted.imagenet_logits(x), model.imagenet_logits(x))
        logits, imagenet = scripted.logits_and_imagenet_logits(x)
    torch.testing.assert_close(logits, eager)
    assert imagenet.shape == (2, 1000)
