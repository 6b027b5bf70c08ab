"""TorchServe handler of osrerank's ``torchserve`` target: (query, document) pairs in, scores out.

The same contract as the stand-in's ``/predictions/{model}`` route and the ``torchserve-pairs``
connector: a request body ``[{"text": q, "text_pair": d}, ...]`` (or ``{"inputs": [...]}``) is answered
with one score per pair, in order: the sigmoid of the logit, or the logit when the archive's
model-config.yaml's ``handler: {model: ...}`` (the target's model section: kind, activation, a decoder's
format) says ``activation: none``. Scoring is osrerank's own ONNX Runtime scorer
over the model folder the archive holds, so every target scores alike.

TorchServe hands ``handle`` one dict per HTTP request in the batch and wants one answer each; a bad
request gets its own 400, never its neighbours'. (TorchServe loads exactly one class from this file.)
"""

import json

from osrerank.config.environment import get
from osrerank.model import activate
from osrerank.scorer import ModelOptions, load_scorer
from osrerank.server.payloads import STATUS, ServerError, torchserve_pairs


class OsRerankHandler:
    def initialize(self, context):
        config = (getattr(context, "model_yaml_config", None) or {}).get("handler", {})
        model_dir = context.system_properties["model_dir"]
        threads = int(get("OSRERANK_ORT_THREADS") or 0) or None
        options = ModelOptions(**{**config.get("model", {}), "path": model_dir, "threads": threads})
        self.scorer = load_scorer(options)
        self.record = get("OSRERANK_TORCHSERVE_RECORD")  # tests: the texts received, one JSON line each

    def handle(self, data, context):
        answers = []
        for i, request in enumerate(data):
            body = request.get("body") if request.get("body") is not None else request.get("data")
            context.set_response_content_type(i, "application/json")
            try:
                if isinstance(body, (bytes, bytearray, str)):
                    try:
                        body = json.loads(body)
                    except ValueError as exc:
                        raise ServerError("validation", f"request body is not valid JSON: {exc}") from None
                asked = torchserve_pairs(body, self.scorer.activation)
                if self.record:
                    with open(self.record, "a", encoding="utf-8") as f:
                        f.write(json.dumps({"pairs": asked.pairs}) + "\n")
                raw = self.scorer.score(asked.pairs).values
                answers.append(json.dumps([float(v) for v in activate(raw, asked.activation)]))
            except ServerError as exc:
                context.set_response_status(STATUS[exc.error_type], str(exc), i)
                answers.append(json.dumps({"error": str(exc), "error_type": exc.error_type}))
        return answers
