import pytest

from bitnet_wasm.kernels import NativeKernels, WasmKernels
from bitnet_wasm.toolchain import build_kernels

LIBRARY_CLASSES = {"wasm": WasmKernels, "wasm-relaxed": WasmKernels, "native": NativeKernels, "native-relaxed": NativeKernels}


@pytest.fixture(scope="session")
def kernel_builds(tmp_path_factory):
    return build_kernels(tmp_path_factory.mktemp("kernels"), list(LIBRARY_CLASSES))


@pytest.fixture(scope="session")
def libs(kernel_builds):
    """Every build of the kernel library, by target name: the same C four ways."""
    return {name: LIBRARY_CLASSES[name](path) for name, path in kernel_builds.items()}


@pytest.fixture(params=list(LIBRARY_CLASSES))
def lib(request, libs):
    return libs[request.param]
