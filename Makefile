# Thin wrapper over CMake: the README's commands.
BUILD ?= build
SAN_BUILD ?= build-san
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build run test test-quick test-san fuzz bench bench-full bench-mtls bench-mtls-tail clean format

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

run: build
	@scripts/run-demo.sh $(BUILD)

# The whole suite twice: built with gcc, then with clang under ASan+UBSan, where the libFuzzer
# targets also fuzz for a bounded time.
test: test-quick test-san

test-quick: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

$(SAN_BUILD)/CMakeCache.txt:
	@cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
		-DRS_SANITIZE=ON -DRS_FUZZ=ON $(CMAKE_FLAGS) >/dev/null

# The whole suite again under ASan+UBSan, plus the libFuzzer targets for a bounded time.
test-san: deps $(SAN_BUILD)/CMakeCache.txt
	@cmake --build $(SAN_BUILD) -j $(JOBS) -- --no-print-directory
	@cd $(SAN_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: build
	@bench/run.sh $(BUILD)

bench-full: build
	@bench/run.sh $(BUILD) full

# Mutual TLS: the mesh hop pairs (scenarios 1-3) and full handshakes per second, ~2 minutes.
bench-mtls: build
	@bench/run.sh $(BUILD) mtls

# The mTLS per-hop tail, paired by round against HAProxy and NGINX (bench/README.md), ~8 minutes.
bench-mtls-tail: build
	@bench/run.sh $(BUILD) mtls-tail

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
