"""``python -m bench`` in a checkout (``python -m pygan bench`` once installed): run every benchmark."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
