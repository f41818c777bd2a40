"""The harness shell: `cram` (cli.py, a table of subcommands) and `cram demo` (demo.py).

The only modules that import every stage: they sit above the pipeline, so no stage imports
them back.
"""
