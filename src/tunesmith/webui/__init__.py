"""``tunesmith webui``: a Gradio layer over the functions and commands the CLI uses.

Nothing here trains, generates or exports by itself: the Train, Evaluate and Export tabs write a
flat config (the YAML keys of ``config.py``) and run ``tunesmith <verb>`` in a subprocess; the Chat
tab calls ``infer.load_engine`` like ``tunesmith chat``. Every path the UI reads or writes is
resolved and checked to lie inside the configured data root or output root (``webui/roots.py``).
"""
