"""The aarch64 NEON linear kernels (src/native/kernels/linear/arm_*.cpp) without an Arm machine:
tests/native/neon/linear_neon_test.cpp (every packed format, awkward shapes, NEON against the
portable kernels and float64, the int8-activation path on base NEON and SDOT) cross-compiled
statically and run under qemu-aarch64, once as a CPU without the dot-product extension
(Cortex-A53: base NEON) and once with it (qemu's "max"). On an aarch64 host it is built with the
host compiler and run natively. Skipped where neither a compiler nor a way to run it is found
(Debian: apt-get install g++-aarch64-linux-gnu qemu-user; scripts/setup.sh tries)."""

import os
import platform
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "src" / "native"
DRIVER = Path(__file__).resolve().parent / "neon" / "linear_neon_test.cpp"
SOURCES = [DRIVER] + [NATIVE / p for p in (
    "core/cpu.cpp", "core/pool.cpp", "kernels/linear/linear.cpp", "kernels/linear/generic.cpp",
    "kernels/linear/arm_neon.cpp", "kernels/activation/activation.cpp")]  # (the layers' epilogues)
DOTPROD = NATIVE / "kernels/linear/arm_dotprod.cpp"  # compiled with +dotprod alone, like CMake
FLAGS = ["-O2", "-std=c++17", f"-I{NATIVE}", "-DPOCKETML_HAVE_NEON_KERNELS=1",
         "-ffp-contract=fast", "-pthread"]

NATIVE_ARM = platform.machine().lower() in ("aarch64", "arm64")
CXX = shutil.which("aarch64-linux-gnu-g++") or (shutil.which("g++") if NATIVE_ARM else None)
QEMU = shutil.which("qemu-aarch64")

pytestmark = pytest.mark.skipif(
    CXX is None or (QEMU is None and not NATIVE_ARM),
    reason="needs aarch64-linux-gnu-g++ and qemu-aarch64 (or an aarch64 host)")


def qemu_cpus():
    if QEMU is None:
        return set()
    out = subprocess.run([QEMU, "-cpu", "help"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines()[1:] if line.strip()}


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """The test program, its objects compiled in parallel (about 10 s)."""
    out = tmp_path_factory.mktemp("neon")
    jobs = [[CXX, *FLAGS, "-c", str(src), "-o", str(out / f"{src.stem}.o")] for src in SOURCES]
    jobs.append([CXX, *FLAGS, "-march=armv8.2-a+dotprod", "-c", str(DOTPROD),
                 "-o", str(out / "arm_dotprod.o")])
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True),
                                jobs))
    for cmd, r in zip(jobs, results):
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    exe = out / "linear_neon_test"
    link = [CXX, "-static", "-pthread", *sorted(str(p) for p in out.glob("*.o")), "-o", str(exe)]
    r = subprocess.run(link, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(link)}\n{r.stderr}"
    return exe


def run(cmd):
    env = {k: v for k, v in os.environ.items() if k != "POCKETML_NATIVE_SIMD"}  # no cap
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    print(r.stdout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-4000:]}{r.stderr}"
    m = re.search(r"(\d+) weights, (\d+) cases .*, (\d+) checks, 0 failures; NEON row kernels "
                  r"for (\d+) weights, int8 path for (\d+) \(SDOT: (\d+)\)", r.stdout)
    assert m, r.stdout
    weights, cases, checks, rows, fast, sdot = map(int, m.groups())
    assert cases >= 2000 and rows > weights // 3 and fast > weights // 4
    return sdot


@pytest.mark.parametrize("cpu, level", [("cortex-a53", "neon"), ("max", "neon-dotprod")])
def test_neon_kernels_under_qemu(driver, cpu, level):
    if QEMU is None:
        pytest.skip("no qemu-aarch64 (aarch64 host: see test_neon_kernels_natively)")
    if cpu not in qemu_cpus():
        pytest.skip(f"this qemu cannot emulate a {cpu}")
    sdot = run([QEMU, "-cpu", cpu, driver, "--expect-level", level])
    assert (sdot > 0) == (level == "neon-dotprod")


@pytest.mark.skipif(not NATIVE_ARM, reason="not an aarch64 host")
def test_neon_kernels_natively(driver):
    run([driver])
