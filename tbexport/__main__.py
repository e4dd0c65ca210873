"""``python -m tbexport`` runs the command line."""

from tbexport.cli import main

if __name__ == "__main__":
    main()
