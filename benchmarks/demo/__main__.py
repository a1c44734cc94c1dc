"""`python -m benchmarks.demo`: see benchmarks/demo/cli.py."""

from benchmarks.demo.cli import main

if __name__ == "__main__":
    main()
