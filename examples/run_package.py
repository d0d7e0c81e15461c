"""Run a package on saved inputs in a process where torch cannot be imported.

    python examples/run_package.py MODEL.pocket INPUTS.npz OUTPUTS.npz [float32|float16]
    python examples/run_package.py --generate MODEL.pocket PROMPT MAX_NEW_TOKENS
    python examples/run_package.py --transcribe MODEL.pocket CLIPS.npz

INPUTS.npz holds `s{i}_{input name}` arrays; OUTPUTS.npz gets `s{i}_{output name}`; a stateful
model gets a fresh state per sample. --generate prints greedy text (chat template applied),
then the generation stats. --transcribe prints one transcript a line for the 16 kHz clips
in CLIPS.npz (arr_0, arr_1, ...), then the real-time factor.
"""
import sys
import time


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is deliberately unavailable in this process")


sys.meta_path.insert(0, _NoTorch())

import numpy as np  # noqa: E402

import pocketml as pm  # noqa: E402


def main(model_path, inputs_path, outputs_path, precision="float32"):
    t0 = time.perf_counter()
    model = pm.load(model_path, compute_precision=precision)
    load_s = time.perf_counter() - t0
    data = np.load(inputs_path)
    n = len({k.split("_", 1)[0] for k in data.files})
    outs, times = {}, []
    for i in range(n):
        inputs = {name: data[f"s{i}_{name}"] for name in model.input_names}
        state = model.make_state() if model.states else None
        t0 = time.perf_counter()
        result = model.predict(inputs, state=state)
        times.append(time.perf_counter() - t0)
        outs.update({f"s{i}_{k}": v for k, v in result.items()})
    np.savez(outputs_path, **outs)
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
    print(f"load {load_s * 1e3:.0f} ms, predict {np.median(times) * 1e3:.0f} ms median over "
          f"{n} sample(s), precision {precision}, torch imported: no")


def generate(model_path, prompt, max_new_tokens):
    from pocketml.generation import Session

    session = Session(pm.load(model_path))
    text = session.tokenizer.apply_chat_template([{"role": "user", "content": prompt}])
    print("".join(session.generate(text, int(max_new_tokens))))
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
    print(f"{session.stats}, torch imported: no")


def transcribe(model_path, clips_path):
    from pocketml.transcription import Transcriber

    transcriber = Transcriber(model_path)
    data = np.load(clips_path)
    results = [transcriber.transcribe(data[f"arr_{i}"]) for i in range(len(data.files))]
    for r in results:
        print(r.text)
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
    print(f"{len(results)} clip(s), {results[-1].stats}, torch imported: no")


if __name__ == "__main__":
    if sys.argv[1] == "--generate":
        generate(*sys.argv[2:])
    elif sys.argv[1] == "--transcribe":
        transcribe(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
