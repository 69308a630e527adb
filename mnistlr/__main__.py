"""`python -m mnistlr` runs the command-line tool."""

from mnistlr.cli import app

if __name__ == "__main__":
    app(prog_name="mnistlr")
