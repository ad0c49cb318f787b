"""LLaMA-Factory's OpenAI-style API server (``llamafactory-cli api``) on 127.0.0.1, for
``tunesmith bench serve``. Run with the LLaMA-Factory venv's python: ``lf_api.py SPEC.json``."""

import json
import sys


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    import uvicorn
    from llamafactory.api.app import create_app
    from llamafactory.chat import ChatModel

    chat = ChatModel({"model_name_or_path": spec["model"], "template": "smollm2",
                      "default_system": spec["default_system"], "infer_backend": "huggingface",
                      "infer_dtype": spec.get("dtype", "auto")})
    uvicorn.run(create_app(chat), host="127.0.0.1", port=int(spec["port"]), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1])
