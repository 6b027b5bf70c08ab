"""Building one rerank field from several, since the rerank processor joins fields with no separator."""

from osrerank.ingest import RERANK_FIELD, combine_fields


def test_fields_are_joined_with_a_separator_and_empty_ones_left_out():
    assert combine_fields({"title": "Title", "text": "Body"}, ("title", "text"))[RERANK_FIELD] == "Title. Body"
    assert combine_fields({"title": "", "text": "Body"}, ("title", "text"))[RERANK_FIELD] == "Body"
    assert combine_fields({"text": "Body"}, ("title", "text"), into="x") == {"text": "Body", "x": "Body"}
