import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrecon.core.stream import StreamEvent
from payrecon.errors import ConfigError
from payrecon.stream.events import DeadLetter, EventDecoder, EventFormat

PAY_JSON = '{"userId": 1, "action": "pay", "orId": "order01", "timestamp": 1606549513}'
RECEIPT_JSON = '{"orId": "order01", "payChannel": "wechat", "timestamp": 1606549536}'


def pay_decoder(fmt: EventFormat | None = None) -> EventDecoder:
    return EventDecoder("pay", fmt or EventFormat(), "orders")


def receipt_decoder(fmt: EventFormat | None = None) -> EventDecoder:
    return EventDecoder("receipt", fmt or EventFormat(), "receipts")


def event(result: StreamEvent | DeadLetter | None) -> StreamEvent:
    assert isinstance(result, StreamEvent), result
    return result


def dead(result: StreamEvent | DeadLetter | None) -> DeadLetter:
    assert isinstance(result, DeadLetter), result
    return result


def counts(decoder: EventDecoder) -> tuple[int, int, int]:
    return decoder.decoded, decoder.ignored, decoder.dead


# --- the article's examples -------------------------------------------------------------


def test_pay_json_from_the_order_service() -> None:
    decoder = pay_decoder()
    got = event(decoder.decode(PAY_JSON + "\n", 1))
    assert got == StreamEvent("pay", "order01", 1606549513000)
    assert got.amount is None
    assert got.raw == {"userId": 1, "action": "pay", "orId": "order01", "timestamp": 1606549513}
    assert counts(decoder) == (1, 0, 0)


def test_receipt_json_from_the_channel() -> None:
    got = event(receipt_decoder().decode(RECEIPT_JSON, 1))
    assert got == StreamEvent("receipt", "order01", 1606549536000)
    assert got.raw == {"orId": "order01", "payChannel": "wechat", "timestamp": 1606549536}


def test_pay_csv_line() -> None:
    got = event(pay_decoder().decode("1,pay,order01,1606549513\r\n", 7))
    assert got == StreamEvent("pay", "order01", 1606549513000)
    assert got.raw == {"userId": "1", "action": "pay", "orId": "order01", "timestamp": "1606549513"}


def test_receipt_csv_line() -> None:
    got = event(receipt_decoder().decode("order01,wechat,1606549536", 1))
    assert got == StreamEvent("receipt", "order01", 1606549536000)
    assert got.raw == {"orId": "order01", "payChannel": "wechat", "timestamp": "1606549536"}


def test_csv_cells_are_stripped_and_may_be_quoted() -> None:
    got = event(receipt_decoder().decode(' "order,01",  wechat , "1606549536" ', 1))
    assert got.order_id == "order,01"
    assert got.ts_ms == 1606549536000


def test_leading_bom_is_dropped() -> None:
    assert event(pay_decoder().decode("\ufeff" + PAY_JSON, 1)).order_id == "order01"


# --- ignored actions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"userId": 1, "action": "create", "orId": "order01", "timestamp": 1606549500}',
        '{"action": "refund"}',  # other actions are not validated further
        "1,create,order01,1606549500",
        "1,PAY,order01,1606549500",  # the action is compared exactly
    ],
)
def test_other_actions_are_ignored_and_counted(line: str) -> None:
    decoder = pay_decoder()
    assert decoder.decode(line, 1) is None
    assert counts(decoder) == (0, 1, 0)


def test_counters_add_up() -> None:
    decoder = pay_decoder()
    lines = [PAY_JSON, '{"action": "create"}', "", "1,pay,order02,1606549514"]
    results = [decoder.decode(line, n) for n, line in enumerate(lines, 1)]
    assert [type(result).__name__ for result in results] == [
        "StreamEvent",
        "NoneType",
        "DeadLetter",
        "StreamEvent",
    ]
    assert counts(decoder) == (2, 1, 1)


def test_receipts_have_no_action() -> None:
    line = '{"orId": "o1", "action": "create", "timestamp": 5}'
    assert event(receipt_decoder().decode(line, 1)).order_id == "o1"


# --- configuration ------------------------------------------------------------------------


def test_configurable_field_names_ms_unit_and_pay_action() -> None:
    fmt = EventFormat(
        order_field="order_id",
        time_field="ts",
        action_field="type",
        pay_action="PAID",
        time_unit="ms",
        pay_csv_columns=("type", "order_id", "ts"),
        receipt_csv_columns=("order_id", "ts"),
    )
    decoder = pay_decoder(fmt)
    line = '{"type": "PAID", "order_id": "A-1", "ts": 1606549513250}'
    assert event(decoder.decode(line, 1)) == StreamEvent("pay", "A-1", 1606549513250)
    assert event(decoder.decode("PAID,A-2,1606549513251", 2)).ts_ms == 1606549513251
    assert decoder.decode('{"type": "pay", "order_id": "A-3", "ts": 1}', 3) is None
    assert event(receipt_decoder(fmt).decode("A-1,1606549513999", 1)).ts_ms == 1606549513999


def test_forced_encodings() -> None:
    as_csv = receipt_decoder(EventFormat(encoding="csv"))
    assert "expected 3 CSV columns" in dead(as_csv.decode('{"orId": "o1"}', 1)).reason
    as_json = pay_decoder(EventFormat(encoding="json"))
    assert dead(as_json.decode("1,pay,order01,1606549513", 1)).reason.startswith("bad JSON")
    assert event(as_json.decode(PAY_JSON, 2)).order_id == "order01"


def test_amount_in_minor_units() -> None:
    decoder = pay_decoder(EventFormat(amount_field="amount"))
    line = '{"action": "pay", "orId": "o1", "timestamp": 1, "amount": 1999}'
    assert event(decoder.decode(line, 1)).amount == 1999
    assert (
        event(
            decoder.decode('{"action": "pay", "orId": "o1", "timestamp": 1, "amount": "5"}', 2)
        ).amount
        == 5
    )
    assert (
        event(decoder.decode('{"action": "pay", "orId": "o1", "timestamp": 1}', 3)).amount is None
    )
    null_amount = '{"action": "pay", "orId": "o1", "timestamp": 1, "amount": null}'
    assert event(decoder.decode(null_amount, 4)).amount is None


def test_amount_from_a_csv_column() -> None:
    fmt = EventFormat(amount_field="amount", receipt_csv_columns=("orId", "timestamp", "amount"))
    decoder = receipt_decoder(fmt)
    assert event(decoder.decode("o1,1606549536,100", 1)).amount == 100
    assert event(decoder.decode("o1,1606549536,", 2)).amount is None


def test_amount_is_ignored_unless_configured() -> None:
    line = '{"action": "pay", "orId": "o1", "timestamp": 1, "amount": 1.5}'
    assert event(pay_decoder().decode(line, 1)).amount is None


def test_integer_order_id_becomes_text() -> None:
    line = '{"action": "pay", "orId": 42, "timestamp": 1}'
    assert event(pay_decoder().decode(line, 1)).order_id == "42"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_unit": "us"}, "time_unit"),
        ({"encoding": "xml"}, "encoding"),
        ({"order_field": ""}, "must not be empty"),
        ({"amount_field": ""}, "must not be empty"),
        ({"order_field": "order_id"}, "lack ['order_id']"),
        ({"pay_csv_columns": ("orId", "timestamp")}, "lack ['action']"),
        ({"receipt_csv_columns": ("orId", "orId", "timestamp")}, "repeat a name"),
    ],
)
def test_bad_formats_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        EventFormat(**kwargs)


def test_json_only_format_does_not_need_csv_columns() -> None:
    fmt = EventFormat(order_field="order_id", encoding="json")
    line = '{"action": "pay", "order_id": "o1", "timestamp": 1}'
    assert event(pay_decoder(fmt).decode(line, 1)).order_id == "o1"


def test_csv_columns_given_as_a_list_become_a_tuple() -> None:
    fmt = EventFormat(receipt_csv_columns=["orId", "timestamp"])  # type: ignore[arg-type]
    assert fmt.receipt_csv_columns == ("orId", "timestamp")
    assert hash(fmt) == hash(EventFormat(receipt_csv_columns=("orId", "timestamp")))


def test_bad_side_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="side"):
        EventDecoder("refund", EventFormat(), "x")  # type: ignore[arg-type]


# --- dead letters -------------------------------------------------------------------------


def pay_json(**fields: Any) -> str:
    base: dict[str, Any] = {"userId": 1, "action": "pay", "orId": "order01", "timestamp": 1}
    base.update(fields)
    return json.dumps({key: value for key, value in base.items() if value is not ...})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("  \r\n", "empty line"),
        (pay_json(orId=...), "missing field 'orId'"),
        (pay_json(orId=None), "missing field 'orId'"),
        (pay_json(orId="  "), "missing field 'orId'"),
        (pay_json(orId=["x"]), "field 'orId' must be text, got ['x']"),
        (pay_json(orId=True), "field 'orId' must be text"),
        (pay_json(action=...), "missing field 'action'"),
        (pay_json(action=1), "field 'action' must be text"),
        (pay_json(timestamp=...), "missing field 'timestamp'"),
        (
            pay_json(timestamp=1606549513.5),
            "field 'timestamp' must be an integer, got 1606549513.5",
        ),
        (pay_json(timestamp=1606549513.0), "field 'timestamp' must be an integer"),
        (pay_json(timestamp="1606549513.5"), "field 'timestamp' must be an integer"),
        (pay_json(timestamp="soon"), "field 'timestamp' must be an integer, got 'soon'"),
        (pay_json(timestamp=True), "field 'timestamp' must be an integer, got True"),
        (pay_json(timestamp=-1), "field 'timestamp' must not be negative, got -1"),
        (pay_json(timestamp="-5"), "field 'timestamp' must not be negative"),
        (pay_json(timestamp=2**63), "field 'timestamp' is out of range"),
        (pay_json(timestamp=2**62), "field 'timestamp' is out of range"),  # ×1000 overflows
        (pay_json(timestamp="9" * 5000), "field 'timestamp' is out of range"),
        ('{"action": "pay", "orId": "order01"', "bad JSON"),
        ('{"timestamp": NaN, "action": "pay", "orId": "o"}', "field 'timestamp' must be an"),
        ("{" * 100_000, "bad JSON"),
        ("[1, 2]", "expected 4 CSV columns"),  # auto: not starting with { means CSV
        ("1,pay,order01", "expected 4 CSV columns (userId, action, orId, timestamp), got 3"),
        ("1,pay,order01,1606549513,x", "got 5"),
        ('1,pay,"order01,1606549513', "bad CSV"),
        ("1,pay,order01\n,1606549513", "bad CSV"),
        ("1,pay,,1606549513", "missing field 'orId'"),
        ("1,pay,order01,1606549513.5", "field 'timestamp' must be an integer, got '1606549513.5'"),
        ("1,pay,order01,-1606549513", "must not be negative"),
    ],
)
def test_bad_pay_lines_are_dead_letters(line: str, reason: str) -> None:
    decoder = pay_decoder()
    letter = dead(decoder.decode(line, 12))
    assert reason in letter.reason
    assert (letter.side, letter.source, letter.position) == ("pay", "orders", 12)
    assert letter.raw == line.rstrip("\r\n")
    assert counts(decoder) == (0, 0, 1)


def test_json_array_is_not_an_object() -> None:
    decoder = pay_decoder(EventFormat(encoding="json"))
    assert dead(decoder.decode("[1, 2]", 1)).reason == "bad JSON: expected an object, got [1, 2]"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"orId": "o1", "payChannel": "wechat"}', "missing field 'timestamp'"),
        ("order01,1606549536", "expected 3 CSV columns (orId, payChannel, timestamp), got 2"),
        ("order01,wechat,", "missing field 'timestamp'"),
    ],
)
def test_bad_receipt_lines_are_dead_letters(line: str, reason: str) -> None:
    letter = dead(receipt_decoder().decode(line, "offset-9"))
    assert reason in letter.reason
    assert (letter.side, letter.position) == ("receipt", "offset-9")


@pytest.mark.parametrize(
    "amount",
    ["1.5", '"19.99"', '"1e3"', "1e3", "true", '"-1"', "-1", '"abc"', "[1]"],
)
def test_non_integer_amount_is_a_dead_letter(amount: str) -> None:
    decoder = pay_decoder(EventFormat(amount_field="amount"))
    line = f'{{"action": "pay", "orId": "o1", "timestamp": 1, "amount": {amount}}}'
    assert "field 'amount'" in dead(decoder.decode(line, 1)).reason


def test_float_amount_reason() -> None:
    decoder = pay_decoder(EventFormat(amount_field="amount"))
    line = '{"action": "pay", "orId": "o1", "timestamp": 1, "amount": 19.99}'
    reason = dead(decoder.decode(line, 1)).reason
    assert reason == "field 'amount' must be an integer (minor units), got 19.99"


def test_long_values_are_shortened_in_the_reason() -> None:
    letter = dead(pay_decoder().decode(pay_json(timestamp="x" * 1000), 1))
    assert len(letter.reason) < 100
    assert letter.reason.endswith("...")


# --- never raises -------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_json_lines = st.dictionaries(
    st.sampled_from(["userId", "action", "orId", "timestamp", "amount", "payChannel"]),
    _scalars | st.sampled_from(["pay", "create"]) | st.lists(_scalars, max_size=2),
).map(json.dumps)
_csv_lines = st.lists(
    st.text(max_size=8) | st.sampled_from(["pay", "create"]) | st.integers().map(str),
    max_size=6,
).map(",".join)
_lines = st.text() | _json_lines | _csv_lines


@given(
    side=st.sampled_from(["pay", "receipt"]),
    amount_field=st.sampled_from([None, "amount", "userId"]),
    lines=st.lists(_lines, max_size=5),
)
def test_decode_never_raises(side: str, amount_field: str | None, lines: list[str]) -> None:
    decoder = EventDecoder(side, EventFormat(amount_field=amount_field), "fuzz")  # type: ignore[arg-type]
    for position, line in enumerate(lines):
        result = decoder.decode(line, position)
        assert result is None or isinstance(result, StreamEvent | DeadLetter)
        if isinstance(result, StreamEvent):
            assert result.side == side and result.order_id and result.ts_ms >= 0
        if isinstance(result, DeadLetter):
            assert result.reason and result.position == position
    assert decoder.decoded + decoder.ignored + decoder.dead == len(lines)
