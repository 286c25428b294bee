"""Builds edge._native with CMake, in the pattern of pybind11's cmake_example.

`pip install .` configures CMakeLists.txt into a temporary build folder and places the built
module inside the `edge` package. Project metadata and dependencies live in pyproject.toml.
"""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class CMakeExtension(Extension):
    def __init__(self, name: str, source_dir: str = ".") -> None:
        super().__init__(name, sources=[])
        self.source_dir = str(Path(source_dir).resolve())


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_type = "Debug" if self.debug else "Release"
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}{os.sep}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={build_type}",
            "-DMPOX_SANITIZE=OFF",  # stated every time: a sanitizer build (CMAKE_ARGS) must not stick in the cache
        ]
        args += [a for a in os.environ.get("CMAKE_ARGS", "").split() if a]
        build_dir = Path(self.build_temp) / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cmake", ext.source_dir, *args], cwd=build_dir, check=True)
        jobs = f"-j{os.cpu_count() or 1}"
        subprocess.run(["cmake", "--build", ".", "--target", "_native", jobs], cwd=build_dir, check=True)


setup(ext_modules=[CMakeExtension("edge._native")], cmdclass={"build_ext": CMakeBuild})
