# sokbo: two commands on a fresh machine — `make run` (the demo) and `make test`.
.PHONY: install run test bench lint check-config stop-redis clean

install:  ## install uv (if missing) and the locked workspace into .venv
	scripts/bootstrap.sh

run:  ## run the whole pipeline on the bundled demo (or CONFIG=path.yaml)
	scripts/run_demo.sh

test:  ## unit, integration and end-to-end tests against a real Redis
	scripts/test.sh

lint:  ## ruff over the whole tree
	scripts/bootstrap.sh && .venv/bin/ruff check libs services tests scripts

check-config:  ## validate CONFIG (default config/korea.example.yaml)
	scripts/bootstrap.sh && .venv/bin/sokbo check-config $(or $(CONFIG),config/korea.example.yaml)

stop-redis:  ## stop the redis-server `make run`/`make test` started under .run/
	@if [ -f .run/redis/redis.pid ] && kill $$(cat .run/redis/redis.pid) 2>/dev/null; then echo stopped; else echo "no redis-server of ours is running"; fi; rm -f .run/redis/port .run/redis/started-here

clean:
	rm -rf .venv .run .pytest_cache

bench:  ## benchmarks: figures printed and written to BENCHMARKS.md
	scripts/bootstrap.sh && .venv/bin/python bench/matching.py --out BENCHMARKS.md
	.venv/bin/python bench/extraction.py --out BENCHMARKS.md
	.venv/bin/python bench/pipeline.py --out BENCHMARKS.md
