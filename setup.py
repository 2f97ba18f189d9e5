"""The one compiled module: the first-pass CTC prefix beam search (model/decoding/_ctc_search.cpp). Everything else is
in pyproject.toml. `pip install .` (and `make install`) compiles it with the system's C++ compiler; where none works the
install still succeeds and the search runs as Python (model/decoding/search.py: the same results, slower).

In place, for a checkout: python setup.py build_ext --inplace"""

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup

setup(ext_modules=[Pybind11Extension(
    "model.decoding._ctc_search", ["model/decoding/_ctc_search.cpp"], cxx_std=17,
    # Bit-equal to the Python reference: no fused multiply-add (one rounding where Python rounds twice), no fast-math.
    extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math"],
    optional=True,  # no compiler: a warning, and the Python search
)])
