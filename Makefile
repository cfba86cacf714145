.PHONY: setup demo dev test lint bench clean

setup:
	sh scripts/setup.sh

demo:
	sh scripts/demo.sh

dev: setup
	.venv/bin/tidegate dev

test:
	sh scripts/test.sh

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench: setup
	.venv/bin/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .tidegate bench/data
