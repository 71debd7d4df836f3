"""mediagraph's benchmark harness: workloads W1 (chain), W2 (voice chain) and W3 (paced sessions).

Run ``python -m bench --help`` from the repository root; ``bench/README.md`` explains how to read the lines.
"""
