"""MTCNN face detector: the three networks of its cascade (P-Net, R-Net, O-Net), one package.

The weights are the `facenet-pytorch` package's `data/{pnet,rnet,onet}.pt` state_dicts (the
package itself is never imported: it imports torchvision); the networks are its own, redefined
here: 3x3 convolutions with PReLU and max pooling (ceil mode), a softmax over face / not face.

- `pnet` (function 1, fully convolutional): an image of even height and width (at least 14) ->
  box offsets (N, 4, h, w) and face probabilities (N, 2, h, w), one per 12 x 12 window at stride 2;
- `rnet`: 24 x 24 candidate crops -> offsets (N, 4) and probabilities (N, 2);
- `onet`: 48 x 48 crops -> offsets (N, 4), five landmarks (N, 10) and probabilities (N, 2)
  (facenet-pytorch's output order).

Images are RGB, as facenet-pytorch feeds them: (pixel - 127.5) / 128, channels first. The
cascade around the networks (image pyramid, non-maximum suppression, box calibration) is not
part of the package.
"""

from __future__ import annotations

import numpy as np

from pocketml.zoo import Entry
from pocketml.zoo._paths import package_file

PACKAGE = "facenet-pytorch"
CROP = {"rnet": 24, "onet": 48}


def weights_path(net: str):
    return package_file("facenet_pytorch", PACKAGE, "data", f"{net}.pt")


def normalize(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB (or (H, W) grey) -> float32 (1, 3, H, W) as MTCNN takes it."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    return ((x - 127.5) * 0.0078125).transpose(2, 0, 1)[None].copy()


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((width, height), Image.BILINEAR))


def face_crops(size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's 200 labelled 25 x 25 crops (100 faces, then 100 non-faces from LFW), resized
    to size x size and normalized: (200, 3, size, size) float32, and the labels (1 = face)."""
    from skimage import data

    crops = (data.lfw_subset() * 255).round().astype(np.uint8)
    x = np.concatenate([normalize(_resize(c, size, size)) for c in crops])
    return x, np.repeat(np.array([1, 0], dtype=np.int64), 100)


def _pnet():
    import torch
    from torch import nn

    class PNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

        def forward(self, image):
            x = nn.functional.max_pool2d(self.prelu1(self.conv1(image)), 2, 2, ceil_mode=True)
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)
    return PNet()


def _rnet():
    import torch
    from torch import nn

    class RNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

        def forward(self, crops):
            x = nn.functional.max_pool2d(self.prelu1(self.conv1(crops)), 3, 2, ceil_mode=True)
            x = nn.functional.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
            x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).reshape(crops.shape[0], -1)
            x = self.prelu4(self.dense4(x))
            return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)
    return RNet()


def _onet():
    import torch
    from torch import nn

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, crops):
            pool = nn.functional.max_pool2d
            x = pool(self.prelu1(self.conv1(crops)), 3, 2, ceil_mode=True)
            x = pool(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
            x = pool(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
            x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).reshape(crops.shape[0], -1)
            x = self.prelu5(self.dense5(x))
            return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)
    return ONet()


def build_net(net: str):
    """One of "pnet", "rnet", "onet", eval mode, its facenet-pytorch weights loaded."""
    import torch

    model = {"pnet": _pnet, "rnet": _rnet, "onet": _onet}[net]()
    model.load_state_dict(torch.load(weights_path(net), weights_only=True, map_location="cpu"))
    return model.eval()


def build():
    """P-Net: forward(image (N, 3, H, W) float32) -> (offsets (N, 4, h, w), probabilities (N, 2, h, w))."""
    return build_net("pnet")


def _pnet_images() -> list[np.ndarray]:
    """Photos at scales of an MTCNN pyramid (minimum face 20 px: first scale 0.6), sizes even."""
    from skimage import data

    out = []
    for image, scales in [(data.astronaut(), (0.6, 0.3017)), (data.chelsea(), (0.25,)), (data.coffee(), (0.2,))]:
        for s in scales:
            h, w = image.shape[:2]
            out.append(normalize(_resize(image, 2 * max(7, round(h * s / 2)), 2 * max(7, round(w * s / 2)))))
    return out


def samples() -> list[tuple]:
    import torch

    return [(torch.from_numpy(x),) for x in _pnet_images()]


def example_inputs() -> tuple:
    return samples()[1]


def _image_dims():
    """Even heights and widths from 14: ceil-mode pooling makes torch.export guard on parity."""
    import torch

    half_h, half_w = torch.export.Dim("half_height", min=7, max=4096), torch.export.Dim("half_width", min=7, max=4096)
    return ({2: 2 * half_h, 3: 2 * half_w},)


def crop_examples(net: str) -> tuple:
    """Eight crops of `face_crops` for `net` ("rnet" or "onet"), four faces and four non-faces."""
    import torch

    x, _ = face_crops(CROP[net])
    return (torch.from_numpy(x[96:104].copy()),)


def _crop_dims():
    import torch

    return ({0: torch.export.Dim("crops", min=1, max=65536)},)


def add_refiners(pnet):
    """The `mtcnn` package from its converted P-Net: R-Net and O-Net converted and merged in, as
    functions `rnet` and `onet` (P-Net's is `pnet`)."""
    import pocketml as pm
    from pocketml.ir.program import Program
    from pocketml.model import Model

    rnet = pm.convert(build_net("rnet"), crop_examples("rnet"), input_names=("crops",),
                      output_names=("offsets", "probabilities"), dynamic_shapes=_crop_dims())
    onet = pm.convert(build_net("onet"), crop_examples("onet"), input_names=("crops",),
                      output_names=("offsets", "landmarks", "probabilities"), dynamic_shapes=_crop_dims())
    return Model(Program.merge({"pnet": pnet.program, "rnet": rnet.program, "onet": onet.program}), pnet.metadata)


ENTRIES = {
    "mtcnn": Entry(
        name="mtcnn",
        description="MTCNN face detector: P-Net (images of even size), R-Net (24x24) and O-Net (48x48 crops), 496 k params",
        license="MIT",
        author="Zhang et al. (MTCNN); PyTorch port by Tim Esler (facenet-pytorch)",
        package=PACKAGE,
        build=build,
        example_inputs=example_inputs,
        samples=samples,
        input_names=("image",),
        output_names=("offsets", "probabilities"),
        dynamic_shapes=_image_dims,
        finish=add_refiners,
    )
}
