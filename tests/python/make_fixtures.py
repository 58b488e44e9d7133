"""Build the fixtures of the Rust test suite: TorchScript models, inputs, and Captum's
attributions on them (Captum 0.9.0 is the oracle; it is never a runtime dependency).

Usage: python tests/python/make_fixtures.py OUT_DIR

Every module `fixtures_*.py` beside this file defines `make(out: pathlib.Path)`; each writes
its own sub-folders. Models are shared through `models.py`.
"""
import importlib
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(2)
    for path in sorted(HERE.glob("fixtures_*.py")):
        module = importlib.import_module(path.stem)
        print(f"fixtures: {path.stem}", flush=True)
        module.make(out)


if __name__ == "__main__":
    main()
