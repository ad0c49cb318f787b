"""Regenerate llamafactory_<version>_keys.json: every LLaMA-Factory config key, read by AST.

    pip download llamafactory==0.9.5 transformers==5.6.0 --no-deps -d /tmp/lf
    cd /tmp/lf && unzip -q llamafactory-*.whl -d lf && unzip -q transformers-*.whl -d tf
    python tests/data/extract_llamafactory_keys.py /tmp/lf/lf /tmp/lf/tf > tests/data/llamafactory_0.9.5_keys.json

transformers 5.6.0 is the newest version LLaMA-Factory 0.9.5 allows: its (Seq2Seq)
TrainingArguments are the HF keys a LLaMA-Factory config may set at the top level.
"""

import ast
import json
import sys
from pathlib import Path


def _fields(path: Path, only):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or (only and cls.name not in only):
            continue
        for st in cls.body:
            if not (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)):
                continue
            name, default, help_ = st.target.id, None, ""
            v = st.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "field":
                for kw in v.keywords:
                    if kw.arg == "default":
                        default = ast.unparse(kw.value)
                    if kw.arg == "metadata" and isinstance(kw.value, ast.Dict):
                        for k, val in zip(kw.value.keys, kw.value.values):
                            if isinstance(k, ast.Constant) and k.value == "help":
                                try:
                                    help_ = ast.literal_eval(val)
                                except ValueError:
                                    help_ = ast.unparse(val)
                    if kw.arg == "init" and isinstance(kw.value, ast.Constant) and kw.value.value is False:
                        name = None
            elif v is not None:
                default = ast.unparse(v)
            if name and not name.startswith("_"):
                yield cls.name, name, default, " ".join(str(help_).split())[:200]


def main(lf_root: str, tf_root: str) -> None:
    lf = Path(lf_root) / "llamafactory" / "hparams"
    tf = Path(tf_root) / "transformers"
    groups = [("model", lf / "model_args.py", None), ("data", lf / "data_args.py", None),
              ("finetuning", lf / "finetuning_args.py", None),
              ("generating", lf / "generating_args.py", None),
              ("training", lf / "training_args.py", None),
              ("training_hf", tf / "training_args.py", {"TrainingArguments"}),
              ("training_hf", tf / "training_args_seq2seq.py", {"Seq2SeqTrainingArguments"})]
    keys = {}
    for group, path, only in groups:
        for cls, name, default, help_ in _fields(path, only):
            keys.setdefault(name, {"group": group, "class": cls, "default": default, "help": help_})
    json.dump({"source": "llamafactory==0.9.5 src/llamafactory/hparams/{model,data,finetuning,"
               "generating,training}_args.py; HF (Seq2Seq)TrainingArguments from "
               "transformers==5.6.0 (the newest LLaMA-Factory 0.9.5 allows)",
               "version": "0.9.5", "transformers": "5.6.0", "keys": keys}, sys.stdout, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
