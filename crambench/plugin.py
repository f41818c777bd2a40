"""A plug-in: one Python file of an entrant's own code, defining some of a fixed set of hooks.

    CRAM_PLUGIN_API = 1                      # the hook set the file was written for

    def build_optimizer(model, optim, options):
        return Lion(model.parameters(), lr=optim.lr, ...)

A hook the file leaves out is the built-in. The harness keeps everything else: the clock,
checkpoints and resume, ranks, data order, the fine-tuning protocol. Every public
function of the file must be a hook (helpers start with `_`), so a misspelt hook is an error
and not a silently unused function, and every hook a top-level `def`, so that the validator
reads which hooks a file defines from its source (`defined_hooks`) without running it.
`cram pretrain --plugin FILE` copies the file into the run
(`RUN/code/plugin.py`); its sha256 and `plugin.options` enter `config_sha256`, and every later
stage loads the run's copy, checked against that hash, never the user's path.
`keep_document` is the one hook of `cram prepare --plugin FILE` (data_prep.keep_document): it
filters the corpus's documents, and the data dir keeps the copy (`DATA/code/plugin.py`) and its
hash.

Torch-free: the validator rehashes a run's copy without importing it.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from crambench.contracts import sha256_file
from crambench.errors import UserError

PLUGIN_API = 1
RUN_COPY = "code/plugin.py"  # where a run keeps its plug-in, relative to the run dir

# The hooks of API 1: name -> what it is called with and must return (docs/plugins.md).
HOOKS = {
    "build_model": "(model_cfg, options, dropout) -> a cramming.model.CrammedBert; its "
                   ".encoder is what fine-tuning reuses",
    "build_optimizer": "(model, optim_cfg, options) -> a torch.optim.Optimizer",
    "lr_factor": "(f, train_cfg, options) -> the factor of optim.lr at f = elapsed / budget, "
                 "a number >= 0",
    "batch_size": "(f, train_cfg, options) -> sequences in the step at f, a whole number >= 1",
    "mask_tokens": "(input_ids, special_ids, vocab_size, generator, train_cfg, options) -> "
                   "(inputs, labels): (B, T) int64 CPU tensors, labels the original id where "
                   "the loss applies and -100 elsewhere; random draws only from `generator`",
    "objective": "(model, inputs, labels, options) -> (loss, mlm_loss): 0-d tensors, the loss "
                 "to minimize and the MLM loss to log (a changed objective runs in the open "
                 "track)",
    "keep_document": "(text, options) -> True to keep the cleaned document, False to drop it; "
                     "run by cram prepare, not by pretraining",
}
# Hooks that change what is trained for, not how: a run whose plug-in defines one is not ranked
# (Rules v1 section 6: the benchmark ranks masked-language-model pretraining).
OPEN_TRACK_HOOKS = ("objective",)


@dataclass
class Plugin:
    path: Path
    sha256: str
    module: ModuleType

    def hook(self, name: str):
        """The file's function for hook `name`, or None (the built-in applies)."""
        return getattr(self.module, name, None)

    def call(self, name: str, *args):
        """Call hook `name`; an exception it raises becomes one line naming the file and the
        hook (the run stops there; its last checkpoint stays as it was)."""
        try:
            return self.hook(name)(*args)
        except UserError:
            raise
        except Exception as err:  # the entrant's code: any exception is theirs to fix
            raise UserError(f"{self.path}: hook {name} raised {type(err).__name__}: "
                            f"{_first_line(err)}") from err


_LOADED: dict[str, Plugin] = {}  # sha256 -> the plug-in loaded from a file with that hash


def load_plugin(path, *, expected_sha256: str | None = None) -> Plugin:
    """Import the plug-in file `path` (once per content: a second load of the same bytes is
    the first module). `expected_sha256`: the hash a run recorded for its copy; a different
    file is refused. Raises UserError in one line for a missing or unreadable file, a syntax
    error (with its line), an exception while importing, a missing or other CRAM_PLUGIN_API,
    or a public function that is not a hook."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"plugin {path} is a folder; give the .py file of hooks")
    if not path.is_file():
        raise UserError(f"plugin file not found: {path}")
    if path.suffix != ".py":
        raise UserError(f"plugin {path} is not a .py file")
    sha256 = sha256_file(path)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise UserError(f"{path} has sha256 {sha256[:16]}... but the run recorded "
                        f"{expected_sha256[:16]}... (plugin.sha256 in config.yaml): the "
                        "run's code was changed after it trained")
    if sha256 in _LOADED:
        return _LOADED[sha256]
    name = f"cram_plugin_{sha256[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        source = path.read_text()
        compile(source, str(path), "exec")
    except SyntaxError as err:
        raise UserError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read plugin {path}: {err}") from None
    sys.modules[name] = module  # dataclasses and pickling look classes up by module name
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the entrant's module-level code
        del sys.modules[name]
        raise UserError(f"{path}: importing it raised {type(err).__name__}: "
                        f"{_first_line(err)}") from None
    check_module(module, path)
    plugin = Plugin(path=path, sha256=sha256, module=module)
    _LOADED[sha256] = plugin
    return plugin


def loaded_plugin(sha256: str) -> Plugin | None:
    """The plug-in already loaded from a file with this hash in this process (None for "":
    no plug-in). A run loads its copy once, before training; the schedules ask here."""
    if not sha256:
        return None
    if sha256 not in _LOADED:
        raise RuntimeError(f"plugin {sha256[:16]}... was not loaded before it was used")
    return _LOADED[sha256]


def check_module(module: ModuleType, path: Path) -> None:
    """The API version and the hook names of a loaded plug-in module."""
    api = getattr(module, "CRAM_PLUGIN_API", None)
    if api != PLUGIN_API:
        found = "defines no CRAM_PLUGIN_API" if api is None else f"has CRAM_PLUGIN_API = {api!r}"
        raise UserError(f"{path} {found}; this harness calls the hooks of API {PLUGIN_API} "
                        f"(write CRAM_PLUGIN_API = {PLUGIN_API})")
    for name, value in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(value):
            continue
        if value.__module__ != module.__name__:
            continue  # imported functions (from math import sqrt) are not the file's hooks
        if name not in HOOKS:
            raise UserError(f"{path}: unknown hook {name!r}; the hooks are "
                            f"{', '.join(HOOKS)} (name helpers with a leading _)")
    written = defined_hooks(path)
    for name in HOOKS:
        if inspect.isfunction(getattr(module, name, None)) and name not in written:
            raise UserError(f"{path}: hook {name} is not a top-level def of the file (write "
                            f"`def {name}(...)`, so that a reader of the source sees it)")
    if not any(inspect.isfunction(getattr(module, name, None)) for name in HOOKS):
        raise UserError(f"{path} defines none of the hooks {', '.join(HOOKS)}: it would "
                        "change nothing")


def defined_hooks(path) -> list[str]:
    """The hooks a plug-in file defines, read from its source (top-level `def`s with a hook's
    name), in HOOKS order; nothing is imported or run. Raises UserError for a file that cannot
    be read or parsed."""
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=str(path))
    except SyntaxError as err:
        raise UserError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except OSError as err:
        raise UserError(f"cannot read plugin {path}: {err.strerror or err}") from None
    names = {node.name for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return [name for name in HOOKS if name in names]


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else "(no message)"
