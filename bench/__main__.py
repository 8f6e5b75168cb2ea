"""``python -m bench``: what ``make bench`` runs."""

from bench.run import main

if __name__ == "__main__":
    main()
