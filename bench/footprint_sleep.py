"""`python -m bench.footprint_sleep SECONDS`: the footprint baseline, an
interpreter that only sleeps (and ends on SIGTERM)."""

import sys
import time

if __name__ == "__main__":
    time.sleep(float(sys.argv[1]))
