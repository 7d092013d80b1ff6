"""torchvision-layout ResNets: names and shapes, PyTorch oracles through safetensors, exact JPEG-domain forms."""

import io

import numpy as np
import pytest

import dctnet
from dctnet import models, nn, resize

# torchvision's state_dict sizes (keys including num_batches_tracked)
TORCHVISION_KEYS = {"resnet18": 122, "resnet34": 218, "resnet50": 320}


def randomize(net, seed=0):
    """Random weights and non-trivial BN statistics that keep activations O(1) through the depth."""
    rng = np.random.default_rng(seed)
    for key, value in net.state_dict().items():
        if key.endswith("running_mean"):
            value[...] = rng.normal(0, 0.2, value.shape)
        elif key.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif key.endswith("bn3.weight") or (key.endswith("bn2.weight") and "layer" in key and net.fc.in_features == 512):
            value[...] = rng.uniform(0.1, 0.4, value.shape)  # the residual branch's last BN: a small branch
        elif key.endswith(".weight") and value.ndim == 1:
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        elif key.endswith(".bias"):
            value[...] = rng.normal(0, 0.1, value.shape)
        elif value.ndim == 4 or value.ndim == 2:
            fan_in = int(np.prod(value.shape[1:]))
            value[...] = rng.normal(0, np.sqrt(2.0 / fan_in), value.shape)
    return net


@pytest.mark.parametrize("name", sorted(TORCHVISION_KEYS))
def test_layout_and_names(name):
    net = models.build_model(name)
    state = net.state_dict()
    assert len(state) == TORCHVISION_KEYS[name]
    assert state["conv1.weight"].shape == (64, 3, 7, 7) and "conv1.bias" not in state
    assert state["fc.weight"].shape == (1000, 512 if name != "resnet50" else 2048)
    assert state["layer2.0.downsample.0.weight"].shape[2:] == (1, 1)
    assert state["layer2.0.downsample.1.running_var"].shape == state["layer2.0.downsample.1.weight"].shape
    assert "layer1.0.downsample.0.weight" in state if name == "resnet50" else "layer1.0.downsample.0.weight" not in state
    again = nn.from_config(net.config())  # the architecture rebuilds from its config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in state.items()}


def test_pixel_forward_and_backward_shapes(rng):
    net = models.resnet18(num_classes=7, in_channels=1)
    x = dctnet.Tensor(rng.normal(size=(2, 1, 64, 48)).astype(np.float32))
    out = net(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert net.conv1.weight.grad.shape == (64, 1, 7, 7)
    assert net.layer4[1].bn2.weight.grad is not None


def test_224_is_refused_in_the_jpeg_domain_naming_the_stage():
    jnet = dctnet.convert(models.resnet18(num_classes=3).eval())
    with pytest.raises(ValueError, match=r"224x224 input makes layer2 28x28 pixels.*multiples of 256"):
        jnet(np.zeros((1, 3, 28, 28, 64), np.float32))
    with pytest.raises(ValueError, match=r"256x384 input makes layer4 8x12"):
        jnet(np.zeros((1, 3, 32, 48, 64), np.float32))
    assert models.stage_sizes(256, 256) == [("conv1", 128, 128), ("maxpool", 64, 64), ("layer1", 64, 64),
                                            ("layer2", 32, 32), ("layer3", 16, 16), ("layer4", 8, 8)]


def test_normalization_folds_into_the_jpeg_domain(rng):
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    net = randomize(models.resnet18(num_classes=4, mean=mean, std=std)).eval().astype(np.float64)
    plain = randomize(models.resnet18(num_classes=4)).eval().astype(np.float64)
    assert list(net.state_dict()) == list(plain.state_dict())  # Normalize holds no state
    x = rng.uniform(size=(1, 3, 256, 256))
    ref = plain(dctnet.Tensor((x - np.reshape(mean, (3, 1, 1))) / np.reshape(std, (3, 1, 1)))).data
    np.testing.assert_allclose(net(dctnet.Tensor(x)).data, ref, rtol=1e-12, atol=1e-12)
    jnet = dctnet.convert(net)
    assert isinstance(jnet.normalize, nn.DCTNormalize) and isinstance(jnet.maxpool, nn.DCTMaxPool2d)
    got = jnet(dctnet.to_dct(x)).data
    assert np.abs(got - ref).max() <= 1e-9 * np.abs(ref).max()


# -- PyTorch oracles --------------------------------------------------------------------------------


def torch_resnet(torch, block, layers, num_classes):
    """torchvision's ResNet written in plain torch (the torchvision wheel does not import beside the CPU torch)."""
    tnn = torch.nn

    class Basic(tnn.Module):
        expansion = 1

        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Bottle(tnn.Module):
        expansion = 4

        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(planes * 4)
            self.relu = tnn.ReLU()
            self.downsample = None
            if stride != 1 or cin != planes * 4:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(planes * 4))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            cls = Basic if block == "basic" else Bottle
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
                blocks = []
                for j in range(n):
                    blocks.append(cls(cin, planes, 2 if i > 0 and j == 0 else 1))
                    cin = planes * cls.expansion
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def torch_weights_file(torch, tmp_path, name, num_classes=10, seed=0):
    """A plain-torch ResNet with random weights and BN statistics, saved by safetensors.torch; the torch model too."""
    import safetensors.torch

    block, layers = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}[name]
    tnet = torch_resnet(torch, block, layers, num_classes).eval()
    state = randomize(models.build_model(name, num_classes=num_classes), seed).state_dict()
    with torch.no_grad():
        for key, value in tnet.state_dict().items():
            value.copy_(torch.from_numpy(np.asarray(state[key])))
    path = tmp_path / f"{name}.safetensors"
    safetensors.torch.save_file(tnet.state_dict(), str(path))
    return tnet, path


def relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torch_weights_give_torch_logits(tmp_path, rng, name):
    torch = pytest.importorskip("torch")
    tnet, path = torch_weights_file(torch, tmp_path, name)
    net = models.build_model(name, num_classes=10).eval()
    net.load_state_dict(dctnet.load_safetensors(path))
    x = rng.uniform(-1, 1, size=(2, 3, 64, 80)).astype(np.float32)
    with torch.no_grad():
        ref32 = tnet(torch.from_numpy(x)).numpy()
        ref64 = tnet.double()(torch.from_numpy(x.astype(np.float64))).numpy()
    got32 = net(dctnet.Tensor(x)).data
    assert got32.dtype == np.float32 and relative(got32, ref32) <= 1e-4
    got64 = net.astype(np.float64)(dctnet.Tensor(x.astype(np.float64))).data
    assert relative(got64, ref64) <= 1e-10


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torch_weights_in_the_jpeg_domain(tmp_path, rng, name):
    """The strided 7x7 stem, max-pool, 1x1 (bottleneck and strided shortcut) convs, all converted."""
    torch = pytest.importorskip("torch")
    tnet, path = torch_weights_file(torch, tmp_path, name, seed=1)
    net = models.build_model(name, num_classes=10).eval()
    net.load_state_dict(dctnet.load_safetensors(path))
    jnet = dctnet.convert(net.astype(np.float64))
    x = rng.uniform(size=(1, 3, 256, 256))
    with torch.no_grad():
        ref = tnet.double()(torch.from_numpy(x)).numpy()
    assert relative(jnet(dctnet.to_dct(x)).data, ref) <= 1e-10


# -- real JPEG photos --------------------------------------------------------------------------------


def pillow_photo(subsampling, seed=0, size=(300, 400)):
    """A smooth synthetic colour photo, JPEG-encoded by Pillow at the given chroma sampling."""
    Image = pytest.importorskip("PIL.Image")
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, 6)
    rgb = np.stack([0.5 + 0.4 * np.sin(5 * xx + phases[c]) * np.cos(3 * yy + phases[c + 3]) for c in range(3)], -1)
    rgb += 0.03 * rng.normal(size=rgb.shape)  # some texture, so every frequency is used
    buf = io.BytesIO()
    codes = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
    Image.fromarray(np.clip(255 * rgb, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85,
                                                                      subsampling=codes[subsampling])
    return buf.getvalue()


def jpeg_domain_vs_pixels(net, jnet, img, size=256):
    """Logits of jnet on the photo's centre-cropped coefficients, and of net on the same crop of the float decode."""
    coefs = img.to_dct(dtype=np.float64)
    crop = resize.center_crop(coefs, size, picture=(img.height, img.width))[None]
    pixels = img.to_pixels(dtype=np.float64, crop=False)  # independent: the decoder's own float IDCT
    bh, bw = coefs.shape[1:3]
    top = 8 * ((min(bh, img.height // 8) - size // 8) // 2)
    left = 8 * ((min(bw, img.width // 8) - size // 8) // 2)
    ref = net(dctnet.Tensor(pixels[None, :, top:top + size, left:left + size] / 255.0)).data
    got = jnet(crop / 255.0).data
    return got, ref


@pytest.fixture(scope="module")
def photo_nets():
    net = randomize(models.resnet18(num_classes=10, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]), 2)
    net = net.eval().astype(np.float64)
    return net, dctnet.convert(net)


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
def test_jpeg_domain_resnet_on_pillow_photos(photo_nets, subsampling):
    net, jnet = photo_nets
    img = dctnet.read_jpeg(pillow_photo(subsampling))
    assert img.height == 300 and img.width == 400
    got, ref = jpeg_domain_vs_pixels(net, jnet, img)
    assert relative(got, ref) <= 1e-10, (subsampling, relative(got, ref))


def test_jpeg_domain_resnet_on_corpus_photos(photo_nets):
    import os
    root = os.environ.get("DCTNET_DATA")
    folder = os.path.join(root or "", "jpeg-corpus", "jpeg-decoder-reftest")
    if not root or not os.path.isdir(folder):
        pytest.skip("DCTNET_DATA/jpeg-corpus not available")
    net, jnet = photo_nets
    for name in ("rgb.jpg", "progressive3.jpg"):  # 500x333 RGB-coded, 650x470 progressive YCbCr
        img = dctnet.read_jpeg(os.path.join(folder, name))
        got, ref = jpeg_domain_vs_pixels(net, jnet, img)
        assert relative(got, ref) <= 1e-10, (name, relative(got, ref))


def test_downscaled_photo_runs_exactly(photo_nets):
    net, jnet = photo_nets
    img = dctnet.read_jpeg(pillow_photo("4:2:0", seed=3, size=(600, 800)))
    x = resize.fit(img.to_dct(dtype=np.float64), 256, picture=(img.height, img.width))  # 1/2, then a crop
    assert x.shape == (3, 32, 32, 64)
    got = jnet(x[None] / 255.0).data
    ref = net(dctnet.Tensor(dctnet.from_dct(x)[None] / 255.0)).data
    assert relative(got, ref) <= 1e-10


def test_predict_example_with_safetensors_weights(tmp_path, capsys):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    predict = pytest.importorskip("predict")
    net = randomize(models.resnet18(num_classes=10), 2)
    weights = tmp_path / "r18.safetensors"
    dctnet.save_safetensors(net, weights)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class{i}\n" for i in range(10)))
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(pillow_photo("4:2:0", seed=5, size=(600, 520)))
    results, failed = predict.main(["--arch", "resnet18", "--weights", str(weights), "--labels", str(labels),
                                    str(photo)])
    assert failed == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{photo}: ") and line.count("class") == 5
    # the same top-1 as the pixel model on the same crop (1/2 downscaling, as fit_image chooses for 520 rows)
    x = resize.fit_image(dctnet.read_jpeg(photo), 256, dtype=np.float64)
    mean, std = np.reshape(predict.IMAGENET_MEAN, (3, 1, 1)), np.reshape(predict.IMAGENET_STD, (3, 1, 1))
    ref = net.eval().astype(np.float64)(dctnet.Tensor((dctnet.from_dct(x) / 255 - mean) / std)[None]).data[0]
    assert results == [(str(photo), f"class{int(np.argmax(ref))}")]
    with pytest.raises(SystemExit):
        predict.main(["--arch", "resnet18", str(photo)])  # no --weights
