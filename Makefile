# Thin front end over CMake presets. See README.md.
.PHONY: all build run test test-only clang bench fuzz format deps clean

FUZZ_SECONDS ?= 20

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release

# Starts the server on ./data (Ctrl-C drains and stops it).
run: build
	@mkdir -p data
	@echo "tesserad on http://127.0.0.1:8080 - try: curl http://127.0.0.1:8080/health"
	@echo "  metrics: curl http://127.0.0.1:8080/metrics; WebSocket: ws://127.0.0.1:8080/v1/ws (subprotocol tessera.v1)"
	@build/release/tesserad --data-dir ./data --listen 127.0.0.1:8080

# Sanitizer build (gcc, ASan+UBSan), the optimised gcc build and a clang
# build (all -Werror: some warnings appear only when optimising), then
# every test against the sanitizer build.
test: deps
	@cmake --preset asan >/dev/null
	@cmake --build build/asan
	@cmake --preset release >/dev/null
	@cmake --build build/release
	@cmake --preset clang >/dev/null
	@cmake --build build/clang
	@scripts/run-tests.sh build/asan

# Runs the tests of an existing sanitizer build without rebuilding clang.
test-only:
	@cmake --build build/asan
	@scripts/run-tests.sh build/asan

bench: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release
	@scripts/run-bench.sh build/release

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build/fuzz
	@scripts/run-fuzz.sh build/fuzz $(FUZZ_SECONDS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
