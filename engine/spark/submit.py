"""Entry point for spark-submit: `spark-submit …/engine/spark/submit.py settle CITY … --engine spark`."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
