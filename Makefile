# Thin entry points; CMake does the building. Every target first makes sure the machine has
# what it needs (scripts/bootstrap.sh, idempotent, re-run when it changes).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# make fuzz: seconds per harness; make test runs each for FUZZ_SMOKE_SECONDS
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4
PORT       ?= 8000
PYTHON     := /usr/bin/python3
STAMP      := third_party/.bootstrap.stamp
JOBS       := $(shell nproc)

.PHONY: all setup build run test lint unit e2e asan fuzz-build fuzz fuzz-smoke bench models models-lm clean

all: build

$(STAMP): scripts/bootstrap.sh web/package-lock.json
	./scripts/bootstrap.sh
	mkdir -p third_party && touch $@

setup: $(STAMP)

build: $(STAMP)
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/inferd serve --model-repository models --host 0.0.0.0 --http-port $(PORT)

unit: build
	cd $(BUILD) && ctest --output-on-failure

e2e: build
	INFERD_BIN=$(CURDIR)/$(BUILD)/inferd $(PYTHON) -m pytest -q tests/e2e

# The same suites against a build with AddressSanitizer + UndefinedBehaviorSanitizer.
asan: export LSAN_OPTIONS = suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
asan: export UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1
asan: $(STAMP)
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DINFERD_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure
	INFERD_BIN=$(CURDIR)/$(ASAN_BUILD)/inferd INFERD_SANITIZED=1 $(PYTHON) -m pytest -q tests/e2e

# Static analysis (docs/static-analysis.md): cppcheck over src/, zero findings. It is given the
# generated protobuf headers and protobuf-c's, so that it sees the gRPC messages' types.
LINT := $(BUILD)/lint
lint: $(STAMP)
	rm -rf $(LINT) && mkdir -p $(LINT)/proto $(LINT)/include
	protoc-c --c_out=$(LINT)/proto -Iproto proto/*.proto
	ln -s "$$(pkg-config --variable=includedir libprotobuf-c)/protobuf-c" $(LINT)/include/protobuf-c
	cppcheck -q -j $(JOBS) --std=c11 --enable=warning,style,performance,portability --library=posix \
	  --library=tests/lint/jansson.cfg --suppressions-list=tests/lint/cppcheck.supp \
	  --suppress=missingIncludeSystem --inline-suppr --error-exitcode=1 \
	  -Isrc -I$(LINT)/proto -I$(LINT)/include src

# libFuzzer harnesses (tests/fuzz/README.md): clang, ASan + UBSan. Each run starts from the
# committed seeds and regression inputs; what it finds goes under $(FUZZ_BUILD)/.
fuzz-build: $(STAMP)
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINFERD_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: fuzz-build
	./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	FUZZ_FRESH=1 ./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS)

test: lint unit e2e asan fuzz-smoke

bench: build
	./bench/run_http.sh

# Regenerates the example models (committed); needs only Debian's packages. The generative
# examples (models-lm: tinylm, tinyembed) need python3-torch and bible-kjv, which nothing else
# needs (building and testing use the committed files), so they are installed here when missing
# rather than by scripts/bootstrap.sh on every machine and CI run.
MODEL_DEB_PACKAGES := python3-torch bible-kjv

models: $(STAMP) models-lm
	$(PYTHON) examples/make_models.py models

models-lm:
	@missing=$$(for p in $(MODEL_DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing" $$missing; apt-get install -y $$missing; fi
	$(PYTHON) examples/make_lm.py models

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
