"""``python -m exchange``: the same as the ``exchange`` command."""

from exchange.cli import main

if __name__ == "__main__":  # not when a worker process (multiprocessing's spawn) imports it
    main()
