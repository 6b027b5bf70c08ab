"""Answer request bodies with the SageMaker Hugging Face inference toolkit's own default handler, in-process.

    HF_TASK=text-classification python toolkit_harness.py MODEL_DIR < requests.json > answers.json

Run by the python of ``toolkit_env.toolkit_python()`` (not osrerank's). ``requests.json`` is a list of
``{"body": <raw request body, a string>, "content_type": "application/json", "accept"?: ...}``; the answer is a list
of ``{"status": int, "body": <parsed JSON, or the raw text when it is not JSON>}`` in the same order (success
answers also carry the response ``content_type``). Stderr gets one line ``{"harness": {versions, classes}}``.

It drives ``HuggingFaceHandlerService`` as multi-model-server does in the Hugging Face inference DLC: ``initialize``
with a context whose ``system_properties`` carry ``model_dir``, then ``handle([{"body": bytearray}], context)`` once
per request (the DLC's MMS config has ``decode_input_request=false``, so the body arrives as bytes). A returned
``[response]`` is status 200; the handler turns every exception into ``PredictionException(str(e), 400)``, whose
``error_code`` is the status and whose message is the body MMS wraps as
``{"code": 400, "type": "InternalServerException", "message": ...}``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_TASK", "text-classification")


class RequestProcessor:
    def __init__(self, properties: dict[str, str]) -> None:
        self.properties = properties

    def get_request_properties(self) -> dict[str, str]:
        return self.properties


class Metrics:
    def add_time(self, *args: object, **kwargs: object) -> None:
        pass


class Context:
    """What MMS hands the handler: system properties, the request's headers, metrics, the response content type."""

    def __init__(self, model_dir: str) -> None:
        self.system_properties = {"model_dir": model_dir, "batch_size": 1, "gpu_id": 0}
        self.request_processor = [RequestProcessor({"Content-Type": "application/json"})]
        self.metrics = Metrics()
        self.response_content_type: str | None = None

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.response_content_type = value


def parsed(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> int:
    model_dir = sys.argv[1]
    requests = json.load(sys.stdin)
    out, sys.stdout = sys.stdout, sys.stderr  # whatever the libraries print must not reach the answers
    try:
        import transformers
        from mms.service import PredictionException
        from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

        context = Context(model_dir)
        service = HuggingFaceHandlerService()
        service.initialize(context)
        import tokenizers

        info = {
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "task": os.environ["HF_TASK"],
            "pipeline": type(service.model).__name__,
            "model": type(service.model.model).__name__,
            "tokenizer": type(service.model.tokenizer).__name__,
            "num_labels": service.model.model.config.num_labels,
        }
        print(json.dumps({"harness": info}), file=sys.stderr, flush=True)  # one line the caller can pick out
        answers = []
        for request in requests:
            properties = {"Content-Type": request.get("content_type", "application/json")}
            if request.get("accept"):
                properties["Accept"] = request["accept"]
            context.request_processor = [RequestProcessor(properties)]
            context.response_content_type = None
            raw = request["body"]
            body = bytearray(raw.encode("utf-8") if isinstance(raw, str) else raw)
            try:
                response = service.handle([{"body": body}], context)[0]
                text = response.decode("utf-8") if isinstance(response, (bytes, bytearray)) else str(response)
                answers.append({"status": 200, "body": parsed(text), "content_type": context.response_content_type})
            except PredictionException as exc:
                answers.append({"status": exc.error_code, "body": parsed(exc.message)})
    finally:
        sys.stdout = out
    json.dump(answers, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
