"""Silero VAD v6 (309 k parameters): voice-activity probability for each 32 ms of 16 kHz audio.

The weights are those of the `silero-vad` package's TorchScript model, `data/silero_vad.jit`
(its 16 kHz half), which its ONNX model shares; the package's `silero_vad_16k.safetensors` holds a
different training run that disagrees with both by up to 0.55 in probability. The package itself
is never imported (it imports torch and loads its model on import). The architecture is the
package's own, redefined here: an STFT as a strided convolution (256-point, hop 128) after a
reflection pad, the magnitude, four 1-D convolutions with ReLU, an LSTM cell, a 1x1 convolution
and a sigmoid.

The model streams: each call takes 512 new samples behind the previous call's last 64 (576 in
all) and the LSTM state (h, c) of the previous call, and returns the probability and the new
state, as the package's ONNX model does. `speech_probabilities` runs it over whole audio.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pocketml.zoo import Entry
from pocketml.zoo._paths import package_file

PACKAGE = "silero-vad"
SAMPLE_RATE = 16_000
CHUNK = 512  # new samples a call (32 ms)
CONTEXT = 64  # samples of the previous chunk in front of each call's
HIDDEN = 128  # LSTM state size


def weights_path():
    return package_file("silero_vad", PACKAGE, "data", "silero_vad.jit")


def onnx_path():
    """The package's ONNX export of the same model (opset 16), the benchmarks' peer."""
    return package_file("silero_vad", PACKAGE, "data", "silero_vad.onnx")


# our parameter name -> the TorchScript model's
_JIT_NAMES = {"stft_conv.weight": "_model.stft.forward_basis_buffer",
              **{f"conv{i + 1}.{p}": f"_model.encoder.{i}.reparam_conv.{p}" for i in range(4) for p in ("weight", "bias")},
              **{f"lstm_cell.{p}": f"_model.decoder.rnn.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
              **{f"final_conv.{p}": f"_model.decoder.decoder.2.{p}" for p in ("weight", "bias")}}


def zero_state(streams: int = 1) -> np.ndarray:
    """The LSTM state before the first chunk: (2, streams, 128) zeros, h then c."""
    return np.zeros((2, streams, HIDDEN), dtype=np.float32)


def chunks(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono audio -> (n, 576) float32 call inputs: each chunk of 512 samples (the last one
    zero-padded) behind the previous chunk's last 64 samples (zeros before the first)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D audio, got shape {audio.shape}")
    n = -(-audio.size // CHUNK)
    padded = np.zeros(CONTEXT + n * CHUNK, dtype=np.float32)
    padded[CONTEXT:CONTEXT + audio.size] = audio
    return padded[np.arange(CONTEXT + CHUNK)[None, :] + CHUNK * np.arange(n)[:, None]]


def speech_probabilities(step: Callable[[np.ndarray, np.ndarray], tuple], audio: np.ndarray) -> np.ndarray:
    """Speech probability per 32 ms chunk of `audio`, streaming: `step(chunk (1, 576), state)`
    returns (probability (1, 1), new state), e.g. a converted package's predict."""
    state, probs = zero_state(), []
    for chunk in chunks(audio):
        prob, state = step(chunk[None], state)
        probs.append(float(np.asarray(prob).reshape(-1)[0]))
    return np.array(probs, dtype=np.float32)


def speech_segments(probabilities: np.ndarray, threshold: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of chunks whose probability reaches `threshold`."""
    on = np.concatenate([[False], np.asarray(probabilities) >= threshold, [False]])
    edges = np.flatnonzero(on[1:] != on[:-1])
    seconds = CHUNK / SAMPLE_RATE
    return [(float(a * seconds), float(b * seconds)) for a, b in zip(edges[::2], edges[1::2])]


def build():
    """forward(audio (B, 576) float32, state (2, B, 128)) -> (probability (B, 1), state (2, B, 128))."""
    import torch
    import torch.nn.functional as F

    class SileroVAD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stft_conv = torch.nn.Conv1d(1, 258, 256, stride=128, bias=False)
            self.conv1 = torch.nn.Conv1d(129, 128, 3, padding=1)
            self.conv2 = torch.nn.Conv1d(128, 64, 3, stride=2, padding=1)
            self.conv3 = torch.nn.Conv1d(64, 64, 3, stride=2, padding=1)
            self.conv4 = torch.nn.Conv1d(64, 128, 3, padding=1)
            self.lstm_cell = torch.nn.LSTMCell(HIDDEN, HIDDEN)
            self.final_conv = torch.nn.Conv1d(HIDDEN, 1, 1)

        def forward(self, audio, state):
            x = self.stft_conv(F.pad(audio, (0, CONTEXT), mode="reflect")[:, None])
            x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
                x = torch.relu(conv(x))
            h, c = self.lstm_cell(x[:, :, 0], (state[0], state[1]))
            prob = torch.sigmoid(self.final_conv(torch.relu(h)[:, :, None]))[:, :, 0]
            return prob, torch.stack([h, c])

    model = SileroVAD()
    jit = torch.jit.load(str(weights_path()), map_location="cpu").state_dict()
    model.load_state_dict({ours: jit[theirs].detach().clone() for ours, theirs in _JIT_NAMES.items()})
    return model.eval()


def _speech(text_index: int) -> np.ndarray:
    """An espeak-ng utterance with half a second of silence before and after."""
    from pocketml.zoo import data

    speech = data.speech(data.SPEECH_TEXTS[text_index])
    silence = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    return np.concatenate([silence, speech, silence])


def _states_before(model, inputs: np.ndarray) -> np.ndarray:
    """The LSTM state before each chunk when `model` streams over `inputs` (n, 576)."""
    import torch

    state, states = torch.zeros(2, 1, HIDDEN), []
    with torch.no_grad():
        for chunk in torch.from_numpy(inputs):
            states.append(state.numpy())
            _, state = model(chunk[None], state)
    return np.stack(states)


def samples() -> list[tuple]:
    """Chunks of an espeak-ng utterance (silence, speech onset, mid-speech, tail), each with the
    state PyTorch's model streamed into, plus four chunks as one batch of four streams."""
    import torch

    inputs = chunks(_speech(0))
    states = _states_before(build(), inputs)
    picks = [0, 14, 16, 20, 40, len(inputs) - 1]
    one = [(torch.from_numpy(inputs[i][None]), torch.from_numpy(states[i])) for i in picks]
    batch = picks[1:5]
    four = (torch.from_numpy(inputs[batch]), torch.from_numpy(np.concatenate([states[i] for i in batch], 1)))
    return one + [four]


def example_inputs() -> tuple:
    """The four-stream batch of `samples()` (a batch of one would pin the stream count to 1)."""
    return samples()[-1]


def _stream_dims():
    import torch

    streams = torch.export.Dim("streams", min=1, max=4096)
    return ({0: streams}, {1: streams})


ENTRIES = {
    "silero-vad": Entry(
        name="silero-vad",
        description="Silero VAD v6: 32 ms of 16 kHz audio + LSTM state -> speech probability, 309 k params",
        license="MIT",
        author="Silero Team",
        package=PACKAGE,
        build=build,
        example_inputs=example_inputs,
        samples=samples,
        input_names=("audio", "state"),
        output_names=("probability", "state_out"),
        dynamic_shapes=_stream_dims,
    )
}
