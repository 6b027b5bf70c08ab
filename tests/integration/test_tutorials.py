"""ml-commons' rerank tutorials replayed as published, against the stand-in.

Each tutorial's requests are kept here as its pages print them for Dev Tools (method line, then the body, with
triple-quoted strings, which Dev Tools sends as JSON strings of their exact content): the connector, the model
registration with ``?deploy=true``, every ``_predict`` call, the bulk load of the four passages, the search
pipeline, and every search request. What changes is only what the pages tell the reader to change (the
``your_...`` placeholders: ids, credentials, region) and where the requests go:

* the connector's URL keeps the real API's path (including its ``${parameters...}`` template) on the stand-in's
  base URL instead of the AWS or Cohere host (for InvokeModel this also removes the tutorial's
  ``https://${parameters. endpoint}...`` typo, which sits in the host part);
* the credentials are the stand-in's (``local_secrets()``); the stand-in's key pair is a long-term one, so the
  ``session_token`` placeholder is dropped rather than filled;
* the index (``my-test-data``) and the pipeline names get a per-run suffix: the cluster is shared.

Sources (byte-identical at ml-commons tags 2.19.6.0, 3.6.0.0 and main):

* Cohere: ml-commons ``docs/tutorials/rerank/rerank_pipeline_with_Cohere_Rerank_model.md``
* InvokeModel ``amazon.rerank-v1:0``: ``.../rerank_pipeline_with_Amazon_Rerank_model_on_Amazon_Bedrock.md``
* InvokeModel ``cohere.rerank-v3-5:0``: ``.../rerank_pipeline_with_Cohere_Rerank_model_on_Amazon_Bedrock.md``
* Bedrock Agent Runtime Rerank: documentation-website ``_tutorials/reranking/reranking-bedrock.md``

The self-managed connector variant of each (access key + secret key) is the one replayed: the roleArn variant
needs Amazon OpenSearch Service. Expected scores are the test cross-encoder's sigmoids for the pairs each request
carries, computed by the kit's scorer on the same model; the stand-in's record of what it received shows that the
texts arrived intact and which of its APIs answered.
"""

from __future__ import annotations

import json
import re
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from osrerank.targets.local_secrets import local_secrets

from .kit import one_node_only
from .rest import Rest, RestError

pytestmark = [
    pytest.mark.integration,
    one_node_only(
        "ml-commons' tutorials as published depend on no cluster shape: "
        "the one-node lines replay them on both OpenSearch lines"
    ),
]

# ---------------------------------------------------------------------------------------------------------------
# The tutorials' requests, verbatim.
# ---------------------------------------------------------------------------------------------------------------

COHERE_CONNECTOR = r"""POST /_plugins/_ml/connectors/_create
{
    "name": "cohere-rerank",
    "description": "The connector to Cohere reanker model",
    "version": "1",
    "protocol": "http",
    "credential": {
        "cohere_key": "your_cohere_api_key"
    },
    "parameters": {
        "model": "rerank-english-v2.0"
    },
    "actions": [
        {
            "action_type": "predict",
            "method": "POST",
            "url": "https://api.cohere.ai/v1/rerank",
            "headers": {
                "Authorization": "Bearer ${credential.cohere_key}"
            },
            "request_body": "{ \"documents\": ${parameters.documents}, \"query\": \"${parameters.query}\", \"model\": \"${parameters.model}\", \"top_n\": ${parameters.top_n} }",
            "pre_process_function": "connector.pre_process.cohere.rerank",
            "post_process_function": "connector.post_process.cohere.rerank"
        }
    ]
}
"""  # noqa: E501

COHERE_REGISTER = r"""POST /_plugins/_ml/models/_register?deploy=true
{
    "name": "cohere rerank model",
    "function_name": "remote",
    "description": "test rerank model",
    "connector_id": "your_connector_id"
}
"""

COHERE_PREDICT = r"""POST _plugins/_ml/models/your_model_id/_predict
{
  "parameters": {
    "query": "What is the capital of the United States?",
    "documents": [
      "Carson City is the capital city of the American state of Nevada.",
      "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.",
      "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the capital of the United States. It is a federal district.",
      "Capital punishment (the death penalty) has existed in the United States since beforethe United States was a country. As of 2017, capital punishment is legal in 30 of the 50 states."
    ],
    "top_n": 4
  }
}
"""  # noqa: E501

COHERE_PIPELINE = r"""PUT /_search/pipeline/rerank_pipeline_cohere
{
    "description": "Pipeline for reranking with Cohere Rerank model",
    "response_processors": [
        {
            "rerank": {
                "ml_opensearch": {
                    "model_id": "your_model_id_created_in_step1"
                },
                "context": {
                    "document_fields": ["passage_text"]
                }
            }
        }
    ]
}
"""

COHERE_SEARCH = r"""GET my-test-data/_search?search_pipeline=rerank_pipeline_cohere
{
  "query": {
    "match_all": {}
  },
  "size": 4,
  "ext": {
    "rerank": {
      "query_context": {
         "query_text": "What is the capital of the United States?"
      }
    }
  }
}
"""

COHERE_SEARCH_WITHOUT_PIPELINE = r"""GET my-test-data/_search
{
  "query": {
    "match_all": {}
  },
  "ext": {
    "rerank": {
      "query_context": {
         "query_text": "What is the capital of the United States?"
      }
    }
  }
}
"""

INVOKE_CONNECTOR = r'''POST /_plugins/_ml/connectors/_create
{
  "name": "Amazon Bedrock rerank model",
  "description": "Test connector for Amazon Bedrock rerank model",
  "version": 1,
  "protocol": "aws_sigv4",
  "credential": {
    "access_key": "your_access_key",
    "secret_key": "your_secret_key",
    "session_token": "your_session_token"
  },
  "parameters": {
    "service_name": "bedrock",
    "endpoint": "bedrock-runtime",
    "region": "your_bedrock_model_region_like_us-west-2",
    "model_name": "amazon.rerank-v1:0" 
  },
  "actions": [
    {
      "action_type": "PREDICT",
      "method": "POST",
      "url": "https://${parameters. endpoint}.${parameters.region}.amazonaws.com/model/${parameters.model_name}/invoke",
      "headers": {
        "x-amz-content-sha256": "required",
        "content-type": "application/json"
      },
      "pre_process_function": """
        def query_text = params.query_text;
        def text_docs = params.text_docs;
        def textDocsBuilder = new StringBuilder('[');
        for (int i=0; i<text_docs.length; i++) {
          textDocsBuilder.append('"');
          textDocsBuilder.append(text_docs[i]);
          textDocsBuilder.append('"');
          if (i<text_docs.length - 1) {
            textDocsBuilder.append(',');
          }
        }
        textDocsBuilder.append(']');
        def parameters = '{ "query": "' + query_text + '",  "documents": ' + textDocsBuilder.toString() + ' }';
        return  '{"parameters": ' + parameters + '}';
        """,
      "request_body": """
        { 
          "documents": ${parameters.documents},
          "query": "${parameters.query}"
        }
        """,
      "post_process_function": """
        if (params.results == null || params.results.length == 0) {
          throw new IllegalArgumentException("Post process function input is empty.");
        }
        def outputs = params.results;
        def relevance_scores = new Double[outputs.length];
        for (int i=0; i<outputs.length; i++) {
          def index = new BigDecimal(outputs[i].index.toString()).intValue();
          relevance_scores[index] = outputs[i].relevance_score;
        }
        def resultBuilder = new StringBuilder('[');
        for (int i=0; i<relevance_scores.length; i++) {
          resultBuilder.append(' {"name": "similarity", "data_type": "FLOAT32", "shape": [1],');
          resultBuilder.append('"data": [');
          resultBuilder.append(relevance_scores[i]);
          resultBuilder.append(']}');
          if (i<outputs.length - 1) {
            resultBuilder.append(',');
          }
        }
        resultBuilder.append(']');
        return resultBuilder.toString();
      """
    }
  ]
}
'''  # noqa: W291

INVOKE_REGISTER = r"""POST /_plugins/_ml/models/_register?deploy=true
{
    "name": "Amazon Bedrock rerank model",
    "function_name": "remote",
    "description": "test rerank model",
    "connector_id": "your_connector_id"
}
"""

INVOKE_PREDICT = r"""POST _plugins/_ml/models/your_model_id/_predict
{
  "parameters": {
    "query": "What is the capital city of America?",
    "documents": [
      "Carson City is the capital city of the American state of Nevada.",
      "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.",
      "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the capital of the United States. It is a federal district.",
      "Capital punishment (the death penalty) has existed in the United States since beforethe United States was a country. As of 2017, capital punishment is legal in 30 of the 50 states."
    ]
  }
}
"""  # noqa: E501

INVOKE_PREDICT_TEXT_SIMILARITY = r"""POST _plugins/_ml/_predict/text_similarity/your_model_id
{
  "query_text": "What is the capital city of America?",
  "text_docs": [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the capital of the United States. It is a federal district.",
    "Capital punishment (the death penalty) has existed in the United States since beforethe United States was a country. As of 2017, capital punishment is legal in 30 of the 50 states."
  ]
}
"""  # noqa: E501

INVOKE_PIPELINE = r"""PUT /_search/pipeline/rerank_pipeline_bedrock
{
    "description": "Pipeline for reranking with Bedrock rerank model",
    "response_processors": [
        {
            "rerank": {
                "ml_opensearch": {
                    "model_id": "your_model_id_created_in_step1"
                },
                "context": {
                    "document_fields": ["passage_text"]
                }
            }
        }
    ]
}
"""

INVOKE_SEARCH_WITHOUT_PIPELINE = r"""POST my-test-data/_search
{
  "query": {
    "match": {
      "passage_text": "What is the capital city of America?"
    }
  },
  "highlight": {
    "pre_tags": ["<strong>"],
    "post_tags": ["</strong>"],
    "fields": {"passage_text": {}}
  },
  "_source": false,
  "fields": ["passage_text"]
}
"""

INVOKE_SEARCH = r"""POST my-test-data/_search?search_pipeline=rerank_pipeline_bedrock
{
  "query": {
    "match": {
      "passage_text": "What is the capital city of America?"
    }
  },
  "ext": {
    "rerank": {
      "query_context": {
         "query_text": "What is the capital city of America?"
      }
    }
  },
  "highlight": {
    "pre_tags": ["<strong>"],
    "post_tags": ["</strong>"],
    "fields": {"passage_text": {}}
  },
  "_source": false,
  "fields": ["passage_text"]
}
"""

INVOKE_SEARCH_QUERY_TEXT_PATH = r"""POST my-test-data/_search?search_pipeline=rerank_pipeline_bedrock
{
  "query": {
    "match": {
      "passage_text": "What is the capital city of America?"
    }
  },
  "ext": {
    "rerank": {
      "query_context": {
         "query_text_path": "query.match.passage_text.query"
      }
    }
  },
  "highlight": {
    "pre_tags": ["<strong>"],
    "post_tags": ["</strong>"],
    "fields": {"passage_text": {}}
  },
  "_source": false,
  "fields": ["passage_text"]
}
"""

INVOKE_COHERE_CONNECTOR = r'''POST /_plugins/_ml/connectors/_create
{
  "name": "Amazon Bedrock Cohere rerank model",
  "description": "Test connector for Amazon Bedrock Cohere rerank model",
  "version": 1,
  "protocol": "aws_sigv4",
  "credential": {
    "access_key": "your_access_key",
    "secret_key": "your_secret_key",
    "session_token": "your_session_token"
  },
  "parameters": {
    "service_name": "bedrock",
    "endpoint": "bedrock-runtime",
    "region": "your_bedrock_model_region_like_us-west-2",
    "model_name": "cohere.rerank-v3-5:0",
    "api_version": 2
  },
  "actions": [
    {
      "action_type": "PREDICT",
      "method": "POST",
      "url": "https://${parameters. endpoint}.${parameters.region}.amazonaws.com/model/${parameters.model_name}/invoke",
      "headers": {
        "x-amz-content-sha256": "required",
        "content-type": "application/json"
      },
      "pre_process_function": """
        def query_text = params.query_text;
        def text_docs = params.text_docs;
        def textDocsBuilder = new StringBuilder('[');
        for (int i=0; i<text_docs.length; i++) {
          textDocsBuilder.append('"');
          textDocsBuilder.append(text_docs[i]);
          textDocsBuilder.append('"');
          if (i<text_docs.length - 1) {
            textDocsBuilder.append(',');
          }
        }
        textDocsBuilder.append(']');
        def parameters = '{ "query": "' + query_text + '",  "documents": ' + textDocsBuilder.toString() + ' }';
        return  '{"parameters": ' + parameters + '}';
        """,
      "request_body": """
        { 
          "documents": ${parameters.documents},
          "query": "${parameters.query}",
          "api_version": ${parameters.api_version}
        }
        """,
      "post_process_function": """
        if (params.results == null || params.results.length == 0) {
          throw new IllegalArgumentException("Post process function input is empty.");
        }
        def outputs = params.results;
        def relevance_scores = new Double[outputs.length];
        for (int i=0; i<outputs.length; i++) {
          def index = new BigDecimal(outputs[i].index.toString()).intValue();
          relevance_scores[index] = outputs[i].relevance_score;
        }
        def resultBuilder = new StringBuilder('[');
        for (int i=0; i<relevance_scores.length; i++) {
          resultBuilder.append(' {"name": "similarity", "data_type": "FLOAT32", "shape": [1],');
          resultBuilder.append('"data": [');
          resultBuilder.append(relevance_scores[i]);
          resultBuilder.append(']}');
          if (i<outputs.length - 1) {
            resultBuilder.append(',');
          }
        }
        resultBuilder.append(']');
        return resultBuilder.toString();
      """
    }
  ]
}
'''  # noqa: W291

INVOKE_COHERE_REGISTER = r"""POST /_plugins/_ml/models/_register?deploy=true
{
    "name": "Amazon Bedrock Cohere rerank model",
    "function_name": "remote",
    "description": "test rerank model",
    "connector_id": "your_connector_id"
}
"""

INVOKE_COHERE_PIPELINE = r"""PUT /_search/pipeline/rerank_pipeline_bedrock
{
    "description": "Pipeline for reranking with Bedrock Cohere rerank model",
    "response_processors": [
        {
            "rerank": {
                "ml_opensearch": {
                    "model_id": "your_model_id_created_in_step1"
                },
                "context": {
                    "document_fields": ["passage_text"]
                }
            }
        }
    ]
}
"""

AGENT_CONNECTOR = r'''POST /_plugins/_ml/connectors/_create
{
  "name": "Amazon Bedrock Rerank API",
  "description": "Test connector for Amazon Bedrock Rerank API",
  "version": 1,
  "protocol": "aws_sigv4",
  "credential": {
    "access_key": "your_access_key",
    "secret_key": "your_secret_key",
    "session_token": "your_session_token"
  },
  "parameters": {
    "service_name": "bedrock",
    "endpoint": "bedrock-agent-runtime",
    "region": "your_bedrock_model_region_like_us-west-2",
    "api_name": "rerank",
    "model_id": "amazon.rerank-v1:0"
  },
  "actions": [
    {
      "action_type": "PREDICT",
      "method": "POST",
      "url": "https://${parameters.endpoint}.${parameters.region}.amazonaws.com/${parameters.api_name}",
      "headers": {
        "x-amz-content-sha256": "required",
        "content-type": "application/json"
      },
      "pre_process_function": "connector.pre_process.bedrock.rerank",
      "request_body": """
        {
          "queries": ${parameters.queries},
          "rerankingConfiguration": {
            "bedrockRerankingConfiguration": {
              "modelConfiguration": {
                "modelArn": "arn:aws:bedrock:${parameters.region}::foundation-model/${parameters.model_id}"
              }
            },
            "type": "BEDROCK_RERANKING_MODEL"
          },
          "sources": ${parameters.sources}
        }
      """,
      "post_process_function": "connector.post_process.bedrock.rerank"
    }
  ]
}
'''

AGENT_REGISTER = r"""POST /_plugins/_ml/models/_register?deploy=true
{
  "name": "Amazon Bedrock Rerank API",
  "function_name": "remote",
  "description": "test Amazon Bedrock Rerank API",
  "connector_id": "your_connector_id"
}
"""

AGENT_PREDICT = r"""POST _plugins/_ml/models/your_model_id/_predict
{
  "parameters": {
    "queries": [
      {
        "textQuery": {
            "text": "What is the capital city of America?"
        },
        "type": "TEXT"
      }
    ],
    "sources": [
        {
            "inlineDocumentSource": {
                "textDocument": {
                    "text": "Carson City is the capital city of the American state of Nevada."
                },
                "type": "TEXT"
            },
            "type": "INLINE"
        },
        {
            "inlineDocumentSource": {
                "textDocument": {
                    "text": "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan."
                },
                "type": "TEXT"
            },
            "type": "INLINE"
        },
        {
            "inlineDocumentSource": {
                "textDocument": {
                    "text": "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the capital of the United States. It is a federal district."
                },
                "type": "TEXT"
            },
            "type": "INLINE"
        },
        {
            "inlineDocumentSource": {
                "textDocument": {
                    "text": "Capital punishment (the death penalty) has existed in the United States since beforethe United States was a country. As of 2017, capital punishment is legal in 30 of the 50 states."
                },
                "type": "TEXT"
            },
            "type": "INLINE"
        }
    ]
  }
}
"""  # noqa: E501

BULK = r"""POST _bulk
{ "index": { "_index": "my-test-data" } }
{ "passage_text" : "Carson City is the capital city of the American state of Nevada." }
{ "index": { "_index": "my-test-data" } }
{ "passage_text" : "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan." }
{ "index": { "_index": "my-test-data" } }
{ "passage_text" : "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the capital of the United States. It is a federal district." }
{ "index": { "_index": "my-test-data" } }
{ "passage_text" : "Capital punishment (the death penalty) has existed in the United States since beforethe United States was a country. As of 2017, capital punishment is legal in 30 of the 50 states." }

"""  # noqa: E501

# The Agent Runtime page's text_similarity request, reranking pipeline, bulk load and searches are byte-identical to
# the amazon.rerank-v1:0 page's (its bulk body lacks only the trailing blank line); the cohere.rerank-v3-5:0 page
# differs from the amazon.rerank-v1:0 page only in its connector, model name and pipeline description.


@dataclass(frozen=True)
class Tutorial:
    connector: str
    register: str
    predicts: tuple[str, ...]
    pipeline: str
    baseline: str  # the page's search without the reranking pipeline
    searches: tuple[str, ...]  # the page's searches through the pipeline
    path: str  # the real API's path, which the connector's URL reaches on the stand-in
    route: str  # the stand-in API that answers that path (as its record names it)


TUTORIALS = {
    "cohere": Tutorial(
        COHERE_CONNECTOR,
        COHERE_REGISTER,
        (COHERE_PREDICT,),
        COHERE_PIPELINE,
        COHERE_SEARCH_WITHOUT_PIPELINE,
        (COHERE_SEARCH,),
        "/v1/rerank",
        "cohere",
    ),
    "bedrock-invoke-amazon-rerank": Tutorial(
        INVOKE_CONNECTOR,
        INVOKE_REGISTER,
        (INVOKE_PREDICT, INVOKE_PREDICT_TEXT_SIMILARITY),
        INVOKE_PIPELINE,
        INVOKE_SEARCH_WITHOUT_PIPELINE,
        (INVOKE_SEARCH, INVOKE_SEARCH_QUERY_TEXT_PATH),
        "/model/amazon.rerank-v1:0/invoke",
        "invoke",
    ),
    "bedrock-invoke-cohere-rerank": Tutorial(
        INVOKE_COHERE_CONNECTOR,
        INVOKE_COHERE_REGISTER,
        (INVOKE_PREDICT, INVOKE_PREDICT_TEXT_SIMILARITY),
        INVOKE_COHERE_PIPELINE,
        INVOKE_SEARCH_WITHOUT_PIPELINE,
        (INVOKE_SEARCH, INVOKE_SEARCH_QUERY_TEXT_PATH),
        "/model/cohere.rerank-v3-5:0/invoke",
        "invoke",
    ),
    "bedrock-agent-runtime": Tutorial(
        AGENT_CONNECTOR,
        AGENT_REGISTER,
        (INVOKE_PREDICT_TEXT_SIMILARITY, AGENT_PREDICT),
        INVOKE_PIPELINE,
        INVOKE_SEARCH_WITHOUT_PIPELINE,
        (INVOKE_SEARCH, INVOKE_SEARCH_QUERY_TEXT_PATH),
        "/rerank",
        "bedrock",
    ),
}

OK = (200,)  # every step of a tutorial must answer 200
TRIPLE_QUOTED = re.compile(r'"""(.*?)"""', re.S)
PASSAGES = [json.loads(line)["passage_text"] for line in BULK.splitlines()[1:] if "passage_text" in line]


# ---------------------------------------------------------------------------------------------------------------
# Replaying
# ---------------------------------------------------------------------------------------------------------------


def console(request: str, fill: dict[str, str]) -> tuple[str, str, str]:
    """(method, path, body text) of one Dev Tools request, its placeholders filled (the longest first)."""
    for placeholder in sorted(fill, key=len, reverse=True):
        request = request.replace(placeholder, fill[placeholder])
    line, _, body = request.partition("\n")
    method, path = line.split(" ", 1)
    return method, "/" + path.strip().lstrip("/"), body


def json_body(body: str) -> Any:
    """The JSON Dev Tools sends for ``body``: each triple-quoted string becomes a JSON string of its exact content."""
    return json.loads(TRIPLE_QUOTED.sub(lambda m: json.dumps(m[1]), body))


def on_standin(connector: dict[str, Any], standin: Any, api_path: str) -> dict[str, Any]:
    """The published connector pointed at the stand-in, with its credentials: only the URL's scheme and host and
    the credential values change."""
    local = local_secrets()
    credential = connector["credential"]
    if connector["protocol"] == "http":
        assert set(credential) == {"cohere_key"}
        credential["cohere_key"] = local.bearer_token
    else:
        assert set(credential) == {"access_key", "secret_key", "session_token"}
        credential.update(access_key=local.access_key, secret_key=local.secret_key)
        del credential["session_token"]  # the stand-in's key pair is long-term: there is no session token to give
    (action,) = connector["actions"]
    action["url"] = re.sub(r"^https://[^/]+", standin.cluster_base_url, action["url"])
    params = connector["parameters"]
    filled = re.sub(r"\$\{parameters\.(\w+)\}", lambda m: str(params[m[1]]), action["url"])
    assert filled == standin.cluster_base_url + api_path, "the URL must reach the real API's path"
    return connector


def pairs_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (query, document) pairs a ``_predict`` body asks to score, in its order."""
    if "query_text" in body:
        return [(body["query_text"], d) for d in body["text_docs"]]
    parameters = body["parameters"]
    if "queries" in parameters:  # Bedrock Agent Runtime's own shape
        (query,) = parameters["queries"]
        texts = [s["inlineDocumentSource"]["textDocument"]["text"] for s in parameters["sources"]]
        return [(query["textQuery"]["text"], t) for t in texts]
    return [(parameters["query"], d) for d in parameters["documents"]]


def similarities(reply: dict[str, Any]) -> list[float]:
    (result,) = reply["inference_results"]
    assert {o["name"] for o in result["output"]} == {"similarity"}, result
    return [float(o["data"][0]) for o in result["output"]]


def received(standin: Any) -> list[dict[str, Any]]:
    return list(requests.get(f"{standin.base_url}/_osrerank/received", timeout=10).json())


def forget(standin: Any) -> None:
    requests.delete(f"{standin.base_url}/_osrerank/received", timeout=10).raise_for_status()


def group_ids(rest: Rest, name: str) -> set[str]:
    return {
        h["_id"]
        for h in rest.hits("/_plugins/_ml/model_groups/_search", {"match_all": {}})
        if h["_source"].get("name") == name
    }


def wait_deployed(rest: Rest, model_id: str) -> None:
    def deployed() -> bool:
        model = rest.request("GET", f"/_plugins/_ml/models/{model_id}", ok=(200, 404)) or {}
        if model.get("model_state") == "DEPLOY_FAILED":
            raise RestError(f"model {model_id} failed to deploy: {model}")
        return model.get("model_state") == "DEPLOYED"

    rest.wait(deployed, f"deploy of {model_id}")


def remove_model(rest: Rest, model_id: str, groups_before: set[str]) -> None:
    """Undeploy and delete the model, then the model group ml-commons made for it (one that existed before stays)."""
    group = (rest.request("GET", f"/_plugins/_ml/models/{model_id}", ok=(200, 404)) or {}).get("model_group_id")
    rest.request("POST", f"/_plugins/_ml/models/{model_id}/_undeploy")
    rest.wait(lambda: rest.status_of_delete(f"/_plugins/_ml/models/{model_id}") in (200, 404), "model delete")
    if group and group not in groups_before:
        rest.request("DELETE", f"/_plugins/_ml/model_groups/{group}", ok=(200, 404))


def text_of(hit: dict[str, Any]) -> str:
    """The passage of a hit: from ``fields`` when the search asked for them (the Bedrock pages' ``"_source":
    false, "fields": ["passage_text"]``), else from ``_source``."""
    if "fields" in hit:
        assert "_source" not in hit
        (text,) = hit["fields"]["passage_text"]
        return str(text)
    return str(hit["_source"]["passage_text"])


def query_of(search: dict[str, Any]) -> str:
    """The query text the reranker is to use: ``query_text``, or what ``query_text_path`` points at."""
    context = search["ext"]["rerank"]["query_context"]
    if "query_text" in context:
        return str(context["query_text"])
    assert context["query_text_path"] == "query.match.passage_text.query"
    return str(search["query"]["match"]["passage_text"])  # the short form of match: {"passage_text": {"query": ...}}


@pytest.mark.parametrize("name", list(TUTORIALS))
def test_the_published_tutorial_replays_on_the_standin(name, os_client, standin, scorer):
    tutorial = TUTORIALS[name]
    rest = Rest(os_client.url)
    run = uuid.uuid4().hex[:8]
    region = standin.server_spec.region  # the region the stand-in checks signatures for
    fill = {
        "your_bedrock_model_region_like_us-west-2": region,
        "my-test-data": f"my-test-data-{run}",
        "rerank_pipeline_cohere": f"rerank_pipeline_cohere-{run}",
        "rerank_pipeline_bedrock": f"rerank_pipeline_bedrock-{run}",
    }
    index = fill["my-test-data"]
    with ExitStack() as cleanup:
        # Step 1: the connector, the model (registered and deployed in one request), the _predict calls
        method, path, body = console(tutorial.connector, fill)
        connector = on_standin(json_body(body), standin, tutorial.path)
        connector_id = rest.request(method, path, connector, ok=OK)["connector_id"]
        cleanup.callback(rest.request, "DELETE", f"/_plugins/_ml/connectors/{connector_id}", ok=(200, 404))
        fill["your_connector_id"] = connector_id

        method, path, body = console(tutorial.register, fill)
        register = json_body(body)
        groups_before = group_ids(rest, register["name"])
        model_id = rest.request(method, path, register, ok=OK)["model_id"]
        cleanup.callback(remove_model, rest, model_id, groups_before)
        wait_deployed(rest, model_id)
        fill["your_model_id"] = fill["your_model_id_created_in_step1"] = model_id

        for request in tutorial.predicts:
            method, path, body = console(request, fill)
            predict = json_body(body)
            pairs = pairs_of(predict)
            forget(standin)
            reply = rest.request(method, path, predict, ok=OK)
            assert similarities(reply) == pytest.approx(list(scorer.predict(pairs)), abs=1e-5), (path, reply)
            assert {"route": tutorial.route, "pairs": [list(p) for p in pairs]} in received(standin)

        # Step 2: the test data, the reranking pipeline, the searches
        method, path, body = console(BULK, fill)
        cleanup.callback(rest.request, "DELETE", f"/{index}", ok=(200, 404))
        loaded = rest.request(method, path, data=body.encode(), headers={"Content-Type": "application/x-ndjson"}, ok=OK)
        assert not loaded["errors"] and len(loaded["items"]) == len(PASSAGES) == 4, loaded
        rest.request("POST", f"/{index}/_refresh", ok=OK)  # a reader's next request comes after the 1 s refresh

        method, path, body = console(tutorial.pipeline, fill)
        pipeline = path.rsplit("/", 1)[1]
        cleanup.callback(rest.request, "DELETE", f"/_search/pipeline/{pipeline}", ok=(200, 404))
        rest.request(method, path, json_body(body), ok=OK)

        method, path, body = console(tutorial.baseline, fill)
        baseline = rest.request(method, path, json_body(body), ok=OK)["hits"]["hits"]
        assert sorted(text_of(h) for h in baseline) == sorted(PASSAGES)

        for request in tutorial.searches:
            method, path, body = console(request, fill)
            search = json_body(body)
            query = query_of(search)
            expected = dict(zip(PASSAGES, scorer.predict([(query, p) for p in PASSAGES]), strict=True))
            forget(standin)
            hits = rest.request(method, path, search, ok=OK)["hits"]["hits"]
            texts = [text_of(h) for h in hits]
            assert texts == sorted(PASSAGES, key=lambda p: -expected[p]), (path, hits)
            assert [h["_score"] for h in hits] == pytest.approx([expected[t] for t in texts], abs=1e-5)
            if "highlight" in search:
                assert all("passage_text" in h["highlight"] for h in hits)
            (call,) = [r for r in received(standin) if r["route"] == tutorial.route]
            assert sorted(map(tuple, call["pairs"])) == sorted((query, p) for p in PASSAGES)
