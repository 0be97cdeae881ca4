"""The JSON nesting scan of the HTTP limits: brackets inside strings do not count, escapes are honoured, and
unclosed brackets count as nesting (the parser would descend into them)."""
from __future__ import annotations

import pytest

from realtime.http.limits import MAX_JSON_DEPTH, nests_too_deep


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        pytest.param("[" * 32 + "]" * 32, False, id="32-arrays"),
        pytest.param("[" * 33 + "]" * 33, True, id="33-arrays"),
        pytest.param('{"a":' * 32 + "1" + "}" * 32, False, id="32-objects"),
        pytest.param('{"a":' * 33 + "1" + "}" * 33, True, id="33-objects"),
        pytest.param("[" * 33, True, id="33-unclosed"),
        pytest.param("[[]]" * 1000, False, id="many-shallow"),
        pytest.param('["' + "[" * 100 + '"]', False, id="brackets-in-a-string"),
        pytest.param('["\\\\", ' + "[" * 40 + "]" * 40 + "]", True, id="escaped-backslash-ends-the-string"),
        pytest.param('["\\"' + "[" * 40 + '"]', False, id="escaped-quote-keeps-the-string-open"),
        pytest.param('["' + "[" * 100_000, False, id="unterminated-string-swallows-the-rest"),
        pytest.param(" [ \n" * 33 + "]" * 33, True, id="whitespace-between-brackets"),
    ],
)
def test_nesting_scan(text: str, too_deep: bool) -> None:
    assert MAX_JSON_DEPTH == 32
    assert nests_too_deep(text) is too_deep
