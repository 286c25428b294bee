# make run   - set up .venv and run the main job
# make test  - set up .venv (with the training and test extras) and run every test
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD_INPUTS := pyproject.toml setup.py CMakeLists.txt $(wildcard native/*.cpp native/*.hpp)
# the runtime's packages, pinned with hashes (deploy/lock.sh)
LOCK := deploy/requirements-x86_64.lock

.PHONY: run test tools lint test-cpp test-cpp-aarch64 test-py bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps: reinstall only when the build inputs change.
# The lock goes in first, so the extras cannot move a runtime package (tests/test_locks.py).
$(VENV)/.runtime: $(PY) $(BUILD_INPUTS) $(LOCK)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(PY) $(BUILD_INPUTS) $(LOCK)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet -e ".[train,dev]"
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(VENV)/bin/mpox kiosk run

test: tools lint test-cpp test-cpp-aarch64 test-py

# What the tests drive for real, from Debian's packages: named at once when missing (.ci/run installs them).
TOOLS := cmake g++ aarch64-linux-gnu-g++ qemu-aarch64 debootstrap chromium mosquitto systemd-analyze shellcheck
tools:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "make test needs:$$missing -- on Debian run 'sudo .ci/run' (it installs them, then runs make test)"; exit 1; fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

test-cpp: $(VENV)/.dev
	cmake -S . -B build/ctest -DMPOX_BUILD_TESTS=ON -DMPOX_BUILD_EXTENSION=OFF > /dev/null
	cmake --build build/ctest -j2 > /dev/null
	cd build/ctest && ctest --output-on-failure

# The Raspberry Pi's code path (NEON): cross-compiled, its tests run under qemu-aarch64.
test-cpp-aarch64:
	cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DMPOX_BUILD_TESTS=ON \
		-DMPOX_BUILD_EXTENSION=OFF > /dev/null
	cmake --build build/aarch64 -j2 > /dev/null
	cd build/aarch64 && ctest --output-on-failure

# tests/pi/ runs the Raspberry Pi's runtime under qemu-aarch64 (its root: tests/pi/make-root.sh,
# cached in ~/.cache/mpox-kiosk/pi-root, outside the tree).
test-py: $(VENV)/.dev
	$(PY) -m pytest

bench: $(VENV)/.runtime
	$(PY) benchmarks/bench_preprocess.py --json
	$(PY) benchmarks/bench_pipeline.py --json

clean:
	rm -rf build $(VENV) *.egg-info edge/_native*.so
