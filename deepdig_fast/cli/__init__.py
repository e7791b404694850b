"""The `deepdig` command line (also `python -m deepdig_fast`). The only package that parses arguments.

deepdig train --dataset mnist --arch cnn            train (or refresh) a reference classifier
deepdig run --dataset mnist --arch cnn --pair 1,2 --out runs/mnist-cnn-1-2
deepdig report RUN_DIR                              (re)write report.md / report.html of a run
deepdig atlas --dataset mnist --arch cnn --classes all --out runs/atlas-mnist-cnn
torchrun --nproc-per-node N -m deepdig_fast atlas ...   the same, sharded over N processes
deepdig compare ATLAS_A ATLAS_B --out DIR           two atlases side by side
deepdig table DIR... --out OUT                      the paper's tables from run folders and atlases
deepdig info                                        how the extension was built

entry: main. parser: every command's options. argtypes: what an option's text may be. inputs,
classifier, classes: what a command reads, checked before any work. train, run, atlas, reports:
the commands. summary: the tables run and atlas print. errors: CLIError, the one-line error.
"""

from deepdig_fast.cli.entry import main
from deepdig_fast.cli.errors import CLIError
from deepdig_fast.cli.parser import TRAJECTORY_SEGMENTS, build_parser

__all__ = ["CLIError", "TRAJECTORY_SEGMENTS", "build_parser", "main"]
