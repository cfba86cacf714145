.PHONY: setup demo dev test lint bench bench-uploads diagrams screenshots clean

setup:
	sh scripts/setup.sh

demo:
	sh scripts/demo.sh

dev: setup
	.venv/bin/tidegate dev

test:
	sh scripts/test.sh

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports

bench: setup
	sh scripts/system-deps.sh bench
	.venv/bin/python -m bench.run $(BENCH_ARGS)

# A resumable upload against POST /import of the same 100 MB file, and resuming a cut one.
bench-uploads: setup
	.venv/bin/python -m bench.uploads $(BENCH_ARGS)

# The seed's diagrams, from their Graphviz source (docs/diagrams/*.dot → *.svg).
diagrams:
	sh scripts/system-deps.sh
	for f in docs/diagrams/*.dot; do dot -Tsvg "$$f" -o "$${f%.dot}.svg"; done

# The console's five screens, on a stack of their own with realistic data (needs chromium).
screenshots: setup
	sh scripts/system-deps.sh
	.venv/bin/python -m tools.screenshots docs/screenshots

clean:
	rm -rf .tidegate bench/data
