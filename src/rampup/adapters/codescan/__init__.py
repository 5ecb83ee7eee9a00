"""Reading and rewriting a team's source code for `rampup refs` and `rampup cleanup`.

The rules — which names hold a flag's key, what is a wrapper, what a check folds to — are pure and live
in `core/coderefs.py` and `core/flagremoval.py`. This package is the I/O and the parsers around them:

- `files.py`     walks a tree, skips dependencies and build output, resolves imports between modules;
- `python_facts.py` / `js_facts.py`  one parser per language (`ast`; tree-sitter for JS/TS/JSX/TSX)
                 turning a file into the core's facts;
- `scan.py`      pre-filters, parses, and follows names across files until nothing new turns up;
- `python_rewrite.py` / `js_rewrite.py`  one rewriter per language (LibCST; tree-sitter byte ranges);
- `cleanup.py`   runs the rewriters over a scan, removes what became unused, re-parses, makes the diff.
"""
