import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


@pytest.fixture(params=["generic", "avx2", "avx512vnni"])
def simd_level(request):
    """Each instruction set's native kernels in turn (skipped where the CPU lacks it), then back
    to the best the CPU has."""
    from pocketml import _native

    _native.set_simd_level(request.param)
    if _native.simd_level() != request.param:
        _native.set_simd(True)
        pytest.skip(f"this CPU lacks {request.param}")
    yield request.param
    _native.set_simd(True)


@pytest.fixture(scope="session")
def zoo_package(tmp_path_factory):
    """name -> (entry, torch module, saved package path): each zoo model converted once per run."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            import pocketml as pm
            from pocketml import zoo

            entry = zoo.get(name)
            module = entry.build()
            model = pm.convert(module, entry.example_inputs(), input_names=entry.input_names,
                               output_names=entry.output_names,
                               dynamic_shapes=entry.dynamic_shapes() if entry.dynamic_shapes else None,
                               metadata=entry.metadata() if entry.metadata else None)
            if entry.finish is not None:  # the rest of the package (e.g. Whisper's decoder)
                model = entry.finish(model)
            path = tmp_path_factory.mktemp("zoo") / f"{name}.pocket"
            model.save(path)
            cache[name] = (entry, module, path)
        return cache[name]

    return get
