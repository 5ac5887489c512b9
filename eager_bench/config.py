"""Model configs: one YAML per model with defaults, named profiles (smoke/cpu/paper) and variants.

Resolution order (later wins): defaults < profile < variant < user config file < explicit overrides.
Every key a profile, variant or user sets must exist in `defaults` with a compatible type, so a typo or a wrong
type is an error that names the key, not a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from eager_bench.errors import BenchError

PROFILES = ("smoke", "cpu", "paper")
DEFAULT_VARIANT = "default"


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BenchError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BenchError(f"{where}: malformed YAML") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: expected a mapping at the top level")
    return data


def _check_types(base: dict[str, Any], update: dict[str, Any], where: str) -> None:
    for key, value in update.items():
        if key not in base:
            raise BenchError(f"{where}: unknown config key {key!r} (known: {', '.join(sorted(base))})")
        default = base[key]
        if default is None or value is None:
            continue
        if isinstance(default, bool) != isinstance(value, bool):
            raise BenchError(f"{where}: {key} must be a boolean, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise BenchError(f"{where}: {key} must be a number, got {value!r}")
            if isinstance(default, int) and isinstance(value, float) and not value.is_integer():
                raise BenchError(f"{where}: {key} must be an integer, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise BenchError(f"{where}: {key} must be a string, got {value!r}")
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise BenchError(f"{where}: {key} must be a mapping, got {value!r}")
        elif isinstance(default, list) and not isinstance(value, list):
            raise BenchError(f"{where}: {key} must be a list, got {value!r}")


def _merge(base: dict[str, Any], update: dict[str, Any], where: str) -> dict[str, Any]:
    _check_types(base, update, where)
    merged = dict(base)
    for key, value in update.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            merged[key] = {**base[key], **value}
        elif isinstance(base.get(key), int) and not isinstance(base.get(key), bool) and isinstance(value, float):
            merged[key] = int(value)
        else:
            merged[key] = value
    return merged


def model_spec(config_file: Path | None) -> dict[str, Any]:
    if config_file is None:
        return {"defaults": {}, "profiles": {p: {} for p in PROFILES}, "variants": {DEFAULT_VARIANT: {}}}
    spec = read_yaml(config_file)
    spec.setdefault("defaults", {})
    spec.setdefault("profiles", {})
    spec.setdefault("variants", {})
    spec["variants"].setdefault(DEFAULT_VARIANT, {})
    spec.setdefault("hash_neutral", {})
    spec.setdefault("architectures", {})
    unknown = sorted(set(spec["hash_neutral"]) - set(spec["defaults"]))
    if unknown:
        raise BenchError(f"{config_file}: hash_neutral names keys missing from defaults: {', '.join(unknown)}")
    return spec


def hashed_config(config_file: Path | None, config: dict[str, Any]) -> dict[str, Any]:
    """The config as it enters the run id: keys added after results were published are left out while they hold
    the value that reproduces the older behaviour (the model file's `hash_neutral`), so those results keep their
    ids and stay findable; any other value of such a key changes the hash like every other key."""
    neutral = model_spec(config_file)["hash_neutral"]
    return {k: v for k, v in config.items() if not (k in neutral and v == neutral[k])}


def variant_names(config_file: Path | None) -> list[str]:
    return list(model_spec(config_file)["variants"])


ARCH_KEY = "arch"  # a model YAML's `architectures:` blocks are chosen by this key


def resolve_config(config_file: Path | None, profile: str, variant: str = DEFAULT_VARIANT,
                   user_file: Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = model_spec(config_file)
    where = str(config_file)
    if profile not in PROFILES:
        raise BenchError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if variant not in spec["variants"]:
        raise BenchError(f"unknown variant {variant!r} in {where}; known: {', '.join(spec['variants'])}")
    layers = [(spec["profiles"].get(profile) or {}, f"{where} (profile {profile})"),
              (spec["variants"][variant] or {}, f"{where} (variant {variant})")]
    if user_file is not None:
        layers.append((read_yaml(user_file), str(user_file)))
    if overrides:
        layers.append((overrides, "--set"))
    config = dict(spec["defaults"])
    architectures = spec.get("architectures") or {}
    if architectures:
        # `arch` names a block of settings between the defaults and the profile, so an architecture is orthogonal
        # to the budget profiles (a smoke profile still shrinks it); the last layer that names `arch` decides.
        arch = next((layer[ARCH_KEY] for layer, _ in reversed(layers) if ARCH_KEY in layer), config.get(ARCH_KEY))
        if arch not in architectures:
            raise BenchError(f"unknown {ARCH_KEY} {arch!r} in {where}; known: {', '.join(architectures)}")
        config = _merge(config, architectures[arch] or {}, f"{where} ({ARCH_KEY} {arch})")
    for layer, name in layers:
        config = _merge(config, layer, name)
    return config


def config_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise BenchError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        raise BenchError(f"--set {key}: cannot parse value {raw!r}") from None
