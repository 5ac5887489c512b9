"""Run RecBole 1.2.1's own sequential models and Trainer on the suite's shared split, and rank with them.

The bridge (1) writes the split's full sequences s_1..s_n as a RecBole atomic `.inter` file (position = timestamp,
so `order: TO` is exact), (2) builds RecBole's Config from a dict only, (3) lets RecBole split it with
`LS valid_and_test` and asserts that RecBole's train pairs, validation and test rows are the suite's, (4) trains with
RecBole's Trainer (early stopping on validation NDCG@10), and (5) ranks histories with the model's
`full_sort_predict`. Everything RecBole writes (data copy, logs, tensorboard, checkpoints) lives under the run dir.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from baselines import recbole_compat  # noqa: F401  (must precede every recbole import)
from baselines import recbole_batches  # noqa: E402
import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.utils import get_model, get_trainer, init_seed  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from eager_bench.compute import PRECISIONS, apply_threads, resolve_precision  # noqa: E402
from eager_bench.errors import BenchError  # noqa: E402
from eager_bench.evaluation import NO_ITEM  # noqa: E402
from eager_bench.models.base import Recommender  # noqa: E402
from eager_bench.ranking import top_k  # noqa: E402
from eager_bench.split import Split  # noqa: E402

# Config keys the bridge itself reads; every other YAML key is passed to RecBole's Config unchanged.
OWN_KEYS = ("threads", "max_train_minutes", "precision", "length_buckets", "loss_slots")
CUTOFFS = [5, 10, 20]
FIELDS = ("user_id", "item_id", "timestamp")


class _StopTraining(Exception):
    """Raised from the per-epoch callback when the time budget is spent (the best checkpoint is already saved)."""


@contextlib.contextmanager
def _plain_argv() -> Iterator[None]:
    # Config reads every `--key=value` in sys.argv as a RecBole setting, so pytest or eager-bench flags would leak in.
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def _keep_cuda_env() -> Iterator[None]:
    # Config sets os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id; the device is chosen by the runner, so undo that.
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    # Trainer.__init__ opens a tensorboard SummaryWriter under the hard-coded relative path ./log_tensorboard.
    saved = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(saved)


def write_atomic_inter(split: Split, path: Path) -> int:
    """The split's full per-user sequences (train + valid target + test target) as a RecBole `.inter` file."""
    users = split.valid.users
    if not (np.array_equal(users, split.test.users) and len(users) == len(split.train)):
        raise BenchError(f"split {split.dataset}: train/valid/test users are not aligned")
    lines = ["\t".join(f"{name}:{kind}" for name, kind in zip(FIELDS, ("token", "token", "float")))]
    for user, train, valid, test in zip(users, split.train, split.valid.targets, split.test.targets):
        seq = np.concatenate([train, [valid, test]])
        lines.extend(f"{user}\t{item}\t{pos}" for pos, item in enumerate(seq.tolist()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return len(lines) - 1


class RecBoleSequential(Recommender):
    """Base of the RecBole-backed baselines; subclasses name the RecBole model (`recbole_model`)."""

    recbole_model: ClassVar[str] = ""
    eval_batch_size: ClassVar[int] = 1024
    bucket_length_floor: ClassVar[int] = 1  # sort key floor of the length buckets (see recbole_batches)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        loss, neg = config.get("loss_type"), config.get("train_neg_sample_args")
        if loss not in ("CE", "BPR"):
            raise BenchError(f"{cls.__name__}: loss_type must be CE or BPR, got {loss!r}")
        if loss == "CE" and neg is not None:
            raise BenchError(f"{cls.__name__}: loss_type CE needs train_neg_sample_args: null (full softmax)")
        if loss == "BPR" and not neg:
            raise BenchError(f"{cls.__name__}: loss_type BPR needs train_neg_sample_args (one uniform negative)")
        for key in ("epochs", "train_batch_size", "eval_batch_size", "stopping_step"):
            if config[key] < 1:
                raise BenchError(f"{cls.__name__}: {key} must be >= 1, got {config[key]}")
        if config["max_train_minutes"] < 0:
            raise BenchError(f"{cls.__name__}: max_train_minutes must be >= 0 (0 = no limit)")
        if config["precision"] not in PRECISIONS:
            raise BenchError(f"{cls.__name__}: precision must be one of {', '.join(PRECISIONS)}, "
                             f"got {config['precision']!r}")

    # ------------------------------------------------------------------ RecBole setup
    def _recbole_dir(self) -> Path:
        path = self.context.run_dir / "recbole"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _config_dict(self, split: Split, data_root: Path) -> dict[str, Any]:
        root = self._recbole_dir()
        device = str(self.context.device)
        params = {k: v for k, v in self.config.items() if k not in OWN_KEYS}
        return {
            **params,
            # RecBole's Trainer wraps each training forward in torch.autocast(device.type) when enable_amp is set:
            # bf16 on CPU and (our choice of) CUDA; its evaluation stays in fp32. The GradScaler stays off (bf16
            # needs no loss scaling).
            "enable_amp": self.precision == "bf16", "enable_scaler": False,
            "data_path": str(data_root),
            "checkpoint_dir": str(root / "checkpoints"),
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "load_col": {"inter": list(FIELDS)},  # the default drops the timestamp that TO ordering needs
            "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",  # no filtering
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
            "repeatable": True,
            "MAX_ITEM_LIST_LENGTH": split.max_history,
            "metrics": ["Recall", "NDCG", "MRR"], "topk": CUTOFFS, "valid_metric": "NDCG@10",
            "metric_decimal_place": 10, "eval_step": 1,
            "seed": int(self.context.seed), "reproducibility": True,
            "use_gpu": device.startswith("cuda"),
            "gpu_id": device.split(":", 1)[1] if device.startswith("cuda:") else ("0" if device == "cuda" else ""),
            "worker": 0, "show_progress": False, "log_wandb": False,
            "save_dataset": False, "save_dataloaders": False,
        }

    def _build(self, split: Split) -> None:
        apply_threads(self.config["threads"])  # EAGER_BENCH_THREADS, else `threads`; 0 = every usable core
        self.precision = resolve_precision(self.config["precision"], str(self.context.device))
        root = self._recbole_dir()
        # A neutral dataset name: RecBole would merge its own properties/dataset/ml-100k.yaml for "ml-100k".
        name = f"eb-{split.dataset}"
        self.n_inter = write_atomic_inter(split, root / "data" / name / f"{name}.inter")
        with _plain_argv(), _keep_cuda_env():
            config = Config(model=self.recbole_model, dataset=name,
                            config_dict=self._config_dict(split, root / "data"))
        config["device"] = torch.device(self.context.device)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train._dataset).to(config["device"])
        torch.autograd.set_detect_anomaly(False)  # get_model imports every RecBole model (sine.py turns it on)
        self.rb_config, self.rb_dataset = config, dataset
        self.train_data, self.valid_data, self.test_data = train, valid, test
        self.net = model
        self.max_len = int(config["MAX_ITEM_LIST_LENGTH"])
        if self.config["length_buckets"]:
            # batches of similar length, each cut to its longest sequence (exact: padding is masked; see module)
            recbole_batches.install(train, dataset.item_list_length_field, self.max_len, int(self.context.seed),
                                    floor=self.bucket_length_floor)
        self.guard_loss(model)
        iid = dataset.iid_field
        tokens = dataset.field2id_token[iid]  # internal id -> token ("[PAD]" at 0)
        self.internal_to_item = np.zeros(len(tokens), dtype=np.int64)
        self.internal_to_item[1:] = tokens[1:].astype(np.int64)
        self.item_to_internal = np.zeros(self.n_items + 1, dtype=np.int64)
        self.item_to_internal[self.internal_to_item[1:]] = np.arange(1, len(tokens))
        self._assert_same_split(split)

    def _rows(self, loader: Any) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(users, targets, histories) of a RecBole loader's dataset, in our ids."""
        ds = loader._dataset
        feat = ds.inter_feat
        users = ds.id2token(ds.uid_field, feat[ds.uid_field].numpy()).astype(np.int64)
        targets = self.internal_to_item[feat[ds.iid_field].numpy()]
        seqs = feat[ds.item_id_list_field].numpy()
        lengths = feat[ds.item_list_length_field].numpy()
        return users, targets, [self.internal_to_item[s[:n]] for s, n in zip(seqs, lengths)]

    def _assert_same_split(self, split: Split) -> None:
        """RecBole's own LS split must be the suite's: same users, targets and histories; same training pairs."""
        for part, ours in (("valid", split.valid), ("test", split.test)):
            users, targets, histories = self._rows(self.valid_data if part == "valid" else self.test_data)
            order = np.argsort(users, kind="stable")
            if not np.array_equal(users[order], np.sort(ours.users)):
                raise AssertionError(f"RecBole's {part} users differ from split.{part}.users")
            pos = np.searchsorted(ours.users, users[order])
            if not np.array_equal(targets[order], ours.targets[pos]):
                raise AssertionError(f"RecBole's {part} targets differ from split.{part}.targets")
            for row, p in zip(order, pos):
                if not np.array_equal(histories[row], ours.histories[p]):
                    raise AssertionError(f"RecBole's {part} history of user {users[row]} differs from the split's")
        users, targets, _ = self._rows(self.train_data)
        ours_users = np.concatenate([np.full(max(len(s) - 1, 0), u) for u, s in zip(split.valid.users, split.train)])
        ours_targets = np.concatenate([s[1:] for s in split.train])
        if sorted(zip(users.tolist(), targets.tolist())) != sorted(zip(ours_users.tolist(), ours_targets.tolist())):
            raise AssertionError("RecBole's training (user, next item) pairs differ from split.train")

    # ------------------------------------------------------------------ training
    def _trainer(self) -> Any:
        base = get_trainer(self.rb_config["MODEL_TYPE"], self.rb_config["model"])
        timings: dict[str, list[float]] = {"train": [], "valid": []}

        class TimedTrainer(base):  # type: ignore[misc, valid-type]
            """RecBole's own trainer; only measures each epoch's training and validation wall time."""

            def _train_epoch(self, *args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                out = super()._train_epoch(*args, **kwargs)
                timings["train"].append(time.perf_counter() - t0)
                return out

            def _valid_epoch(self, *args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                out = super()._valid_epoch(*args, **kwargs)
                timings["valid"].append(time.perf_counter() - t0)
                return out

        root = self._recbole_dir()
        with _cwd(root):
            trainer = TimedTrainer(self.rb_config, self.net)
        # The writer keeps its relative path and reopens it on every write, so swap in one with an absolute path.
        log_dir = root / trainer.tensorboard.log_dir
        trainer.tensorboard.close()
        trainer.tensorboard = SummaryWriter(str(log_dir))
        trainer.saved_model_file = str(self._recbole_dir() / "checkpoints" / "best.pth")
        return trainer, timings

    def _attach_log(self) -> logging.Handler:
        # RecBole logs through the root logger; keep its epoch lines in the run dir instead of ./log (init_logger).
        handler = logging.FileHandler(self._recbole_dir() / "recbole.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(handler)
        return handler

    def fit(self, split: Split) -> dict[str, Any]:
        self._build(split)
        root = self._recbole_dir()
        last, best = root / "checkpoints" / "last.pth", root / "checkpoints" / "best.pth"
        progress_file = root / "progress.json"
        progress: dict[str, Any] = {"epochs": [], "finished": False, "stopped_by": None}
        handler = self._attach_log()
        trainer, timings = self._trainer()
        resumed_from = None
        if last.exists() and progress_file.exists():
            # A killed run resumes from the last finished epoch (model, optimizer, early-stopping state).
            progress = json.loads(progress_file.read_text())
            if not progress["finished"]:
                trainer.resume_checkpoint(str(last))
                trainer.saved_model_file = str(best)  # resume_checkpoint points it at the resume file
                trainer.best_valid_result = progress.get("best_valid_result")
                resumed_from = trainer.start_epoch
        budget_s = float(self.config["max_train_minutes"]) * 60.0

        def after_epoch(epoch: int, score: float) -> None:
            record = {"epoch": epoch, "train_s": round(timings["train"][-1], 3),
                      "valid_s": round(timings["valid"][-1], 3), "valid_ndcg@10": float(score),
                      "train_loss": float(trainer.train_loss_dict.get(epoch, math.nan))}
            progress["epochs"].append(record)
            progress["best_valid_result"] = {k: float(v) for k, v in (trainer.best_valid_result or {}).items()}
            trainer._save_checkpoint(epoch, verbose=False, saved_model_file=str(last))
            _write_json(progress_file, progress)
            spent = sum(e["train_s"] + e["valid_s"] for e in progress["epochs"])
            # Stop before an epoch that would likely end past the budget (mean epoch time so far as the estimate).
            if budget_s and spent + spent / len(progress["epochs"]) > budget_s and epoch + 1 < trainer.epochs:
                progress["stopped_by"] = f"time budget max_train_minutes={self.config['max_train_minutes']}"
                raise _StopTraining

        try:
            if not progress["finished"]:
                try:
                    trainer.fit(self.train_data, self.valid_data, saved=True, show_progress=False,
                                callback_fn=after_epoch)
                    if progress["stopped_by"] is None:
                        progress["stopped_by"] = ("early stopping" if len(progress["epochs"]) and
                                                  progress["epochs"][-1]["epoch"] + 1 < trainer.epochs
                                                  else "epoch cap")
                except _StopTraining:
                    pass
                except ValueError as err:  # RecBole's Trainer._check_nan
                    if "nan" not in str(err).lower():
                        raise
                    done = len(progress["epochs"])
                    raise BenchError(f"{self.recbole_model}: training loss became NaN in epoch {done} (precision "
                                     f"{self.precision}, length_buckets {self.config['length_buckets']}); the "
                                     f"checkpoint of epoch {done - 1} is kept in {last.parent}") from None
                progress["finished"] = True
                _write_json(progress_file, progress)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
        # Select the validation-best epoch (RecBole saved it on every improvement).
        state = torch.load(best, map_location=self.rb_config["device"], weights_only=False)
        self.net.load_state_dict(state["state_dict"])
        self.net.load_other_parameter(state.get("other_parameter"))
        self.net.eval()
        self.trainer = trainer
        return self._report(progress, int(state["epoch"]), resumed_from)

    def _report(self, progress: dict[str, Any], best_epoch: int, resumed_from: int | None) -> dict[str, Any]:
        epochs = progress["epochs"]
        train_s = [e["train_s"] for e in epochs]
        n_train = len(self.train_data._dataset)
        notes = [
            "RecBole 1.2.1's own model class and Trainer (not a rewrite), fed the suite's split as an atomic .inter "
            "file; RecBole's train/valid/test rows were asserted equal to the split's.",
            "Full ranking over all items; only [PAD] is masked, items already in the history are NOT masked "
            "(RecBole's repeatable=True convention for sequential models, the suite's shared protocol).",
            # best_epoch is RecBole's 0-based index (kept so in the record); people count epochs from 1.
            f"Checkpoint selected on validation NDCG@10 (best epoch {best_epoch + 1} of {len(epochs)}, counted from 1); "
            f"stopped by {progress['stopped_by']}.",
        ]
        notes += self.variant_notes()
        notes.append(f"Training precision {self.precision} (precision: {self.config['precision']}; bf16 = RecBole's "
                     "enable_amp autocast, fp32 weights and optimizer); evaluation in fp32.")
        if self.config["length_buckets"]:
            notes.append("Training batches bucketed by sequence length and trimmed to their longest sequence "
                         "(length_buckets; exact per batch since padding is masked, but batches group instances of "
                         "similar length, unlike RecBole's uniform shuffle).")
        if resumed_from is not None:
            notes.append(f"Resumed from a checkpoint at epoch {resumed_from}: the data-loader shuffle order after "
                         "the resume is not the one an uninterrupted run would have used.")
        return {
            "resumed_at": resumed_from,
            "epochs": len(epochs),
            "best_epoch": best_epoch,
            "seconds_per_epoch": round(float(np.mean(train_s)), 3) if train_s else None,
            "valid_seconds_per_epoch": round(float(np.mean([e["valid_s"] for e in epochs])), 3) if epochs else None,
            "samples_per_s": round(n_train / float(np.mean(train_s)), 1) if train_s else None,
            "train_samples_per_epoch": n_train,
            "valid_curve": [e["valid_ndcg@10"] for e in epochs],
            "train_loss_curve": [e["train_loss"] for e in epochs],
            "best_valid_recbole": progress.get("best_valid_result"),
            "stopped_by": progress["stopped_by"],
            "parameters": int(sum(p.numel() for p in self.net.parameters())),
            "threads": torch.get_num_threads(),
            "precision": self.precision,
            "interactions_written": self.n_inter,
            "notes": notes,
        }

    def guard_loss(self, net: torch.nn.Module) -> None:
        """Hook for a model whose RecBole loss is undefined on some batches (BERT4Rec); the default changes nothing."""

    def variant_notes(self) -> list[str]:
        return []

    # ------------------------------------------------------------------ ranking
    def _interaction(self, histories: list[np.ndarray]) -> Interaction:
        seqs = np.zeros((len(histories), self.max_len), dtype=np.int64)  # right-padded, as RecBole's loaders do
        lengths = np.zeros(len(histories), dtype=np.int64)
        for row, hist in enumerate(histories):
            hist = np.asarray(hist, dtype=np.int64)[-self.max_len:]
            if hist.size == 0:
                raise BenchError(f"{type(self).__name__}: cannot rank an empty history (row {row})")
            if hist.min() < 1 or hist.max() > self.n_items:
                raise BenchError(f"{type(self).__name__}: history item outside 1..{self.n_items} (row {row})")
            seqs[row, :hist.size] = self.item_to_internal[hist]
            lengths[row] = hist.size
        if np.any((seqs == 0) & (np.arange(self.max_len)[None, :] < lengths[:, None])):
            raise BenchError(f"{type(self).__name__}: a history item never occurs in the training data")
        return Interaction({self.net.ITEM_SEQ: torch.from_numpy(seqs),
                            self.net.ITEM_SEQ_LEN: torch.from_numpy(lengths)})

    @torch.no_grad()
    def scores(self, histories: list[np.ndarray]) -> torch.Tensor:
        """[B, RecBole item_num] scores, column = RecBole internal id; [PAD] is -inf."""
        self.net.eval()
        inter = self._interaction(histories).to(self.rb_config["device"])
        scores = self.net.full_sort_predict(inter).view(len(histories), -1)
        # Only [PAD] is masked. History items stay rankable (no history masking): RecBole's convention for
        # sequential models (repeatable=True) and the suite's shared protocol; stated in the result notes.
        scores[:, 0] = -torch.inf
        return scores

    def _column_item_ids(self, device: torch.device) -> torch.Tensor:
        """Our item id of every RecBole column ([PAD] = 0, scored -inf anyway), for the tie rule."""
        return torch.as_tensor(self.internal_to_item, device=device)

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        scores = self.scores(histories)
        n_real = scores.shape[1] - 1
        # Columns are RecBole's internal ids: equal scores are ranked by our item id, not by RecBole's order.
        top = top_k(scores, min(k, n_real), ids=self._column_item_ids(scores.device)).cpu().numpy()
        out = np.full((len(histories), k), NO_ITEM, dtype=np.int64)
        out[:, :top.shape[1]] = self.internal_to_item[top]
        return out

    def recbole_evaluate(self, part: str = "test") -> dict[str, float]:
        """RecBole's own full-sort evaluation of the current (selected) model, for cross-checking the evaluator."""
        loader = self.test_data if part == "test" else self.valid_data
        result = self.trainer.evaluate(loader, load_best_model=False, show_progress=False)
        return {k: float(v) for k, v in result.items()}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
