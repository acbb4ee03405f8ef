"""An independent oracle of SPEC §3: the Qdrant points a table's rows must become.

Written from the SPEC, not from pg2qdrant's C code, so the two can check each other.
Input: each column's type description and its PostgreSQL *text form*, the output
function's form as pgoutput sends it (selected with format('%s', col) in a session with
TimeZone=UTC, DateStyle=ISO and bytea_output=hex).
Python 3 standard library only.  `python3 expected.py` runs the self-test.
"""

import base64
import json
import math
import uuid

INT_TYPES = {"int2", "int4", "int8"}
FLOAT_TYPES = {"float4", "float8"}
PGVECTOR_DENSE = {"vector", "halfvec"}


class Column:
    """A column's type as the oracle needs it (from pg_attribute/pg_type)."""

    def __init__(self, name, typname, typtype="b", elem=None, elem_typtype=None):
        self.name = name
        self.typname = typname        # e.g. int4, _int4 (array), mood (enum), vector (pgvector)
        self.typtype = typtype        # b base, e enum, d domain, ...
        self.elem = elem              # element typname for arrays, else None
        self.elem_typtype = elem_typtype

    def __repr__(self):
        return "Column(%s %s)" % (self.name, self.typname)


class TableSpec:
    """What the [table] section says: key columns, vectors {name: column}, payload."""

    def __init__(self, name, collection, key, vectors, payload="*", id_mode="auto"):
        self.name = name              # schema.table
        self.collection = collection
        self.key = list(key)          # key column names
        self.vectors = dict(vectors)  # "" = the unnamed vector
        self.payload = payload        # "*" or a list of column names
        self.id_mode = id_mode        # "auto" or "uuid5"


# --- point ids ---------------------------------------------------------------

def point_id(key_cols, key_texts, force_uuid5=False):
    """SPEC §3 point id from the key columns' types and text forms."""
    if len(key_cols) == 1 and not force_uuid5:
        col, text = key_cols[0], key_texts[0]
        if col.typname in INT_TYPES and int(text) >= 0:
            return int(text)
        if col.typname == "uuid":
            return str(uuid.UUID(text))
    if len(key_cols) == 1:
        name = key_texts[0]
    else:
        name = json.dumps(list(key_texts), separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


# --- PostgreSQL array literals -------------------------------------------------

def parse_array(text):
    """'{a,"b c",NULL,{1,2}}' -> nested lists of element text (None for NULL)."""
    if text.startswith("["):  # explicit bounds: '[0:1]={1,2}'
        text = text[text.index("=") + 1:]
    value, pos = _parse_array_at(text, 0)
    if pos != len(text):
        raise ValueError("trailing characters in array literal %r" % text)
    return value


def _parse_array_at(s, i):
    if s[i] != "{":
        raise ValueError("array literal must start with '{': %r" % s)
    i += 1
    items = []
    if s[i] == "}":
        return items, i + 1
    while True:
        if s[i] == "{":
            item, i = _parse_array_at(s, i)
        elif s[i] == '"':
            i += 1
            chars = []
            while s[i] != '"':
                if s[i] == "\\":
                    i += 1
                chars.append(s[i])
                i += 1
            item = "".join(chars)
            i += 1
        else:
            j = i
            while s[j] not in ",}":
                j += 1
            raw = s[i:j].strip()
            item = None if raw.upper() == "NULL" else raw
            i = j
        items.append(item)
        if s[i] == ",":
            i += 1
        elif s[i] == "}":
            return items, i + 1
        else:
            raise ValueError("bad array literal %r at %d" % (s, i))


# --- payload values -----------------------------------------------------------

def _float_value(text):
    if text in ("NaN", "Infinity", "-Infinity"):
        return text
    return float(text)


def _timestamp(text):
    if text in ("infinity", "-infinity"):
        return text
    return text.replace(" ", "T", 1)


def _timestamptz_utc(text):
    """'2024-02-29 11:14:15.5+00' (session TimeZone UTC) -> '2024-02-29T11:14:15.5Z'."""
    if text in ("infinity", "-infinity"):
        return text
    if not text.endswith("+00"):
        raise ValueError("timestamptz not selected in UTC: %r" % text)
    return text[:-3].replace(" ", "T", 1) + "Z"


def _scalar(typname, typtype, text):
    if text is None:
        return None
    if typname == "bool":
        return {"t": True, "f": False}[text]
    if typname in INT_TYPES:
        return int(text)
    if typname in FLOAT_TYPES:
        return _float_value(text)
    if typname == "numeric":
        return _float_value(text)  # NaN / ±Infinity stay strings
    if typname in ("json", "jsonb"):
        return json.loads(text)
    if typname == "timestamp":
        return _timestamp(text)
    if typname == "timestamptz":
        return _timestamptz_utc(text)
    if typname == "bytea":
        if not text.startswith("\\x"):
            raise ValueError("bytea not selected with bytea_output=hex: %r" % text)
        return base64.b64encode(bytes.fromhex(text[2:])).decode("ascii")
    # date (ISO is already YYYY-MM-DD), text, varchar, enum, uuid, inet, interval, others
    return text


def _map_nested(items, col):
    if isinstance(items, list):
        return [_map_nested(x, col) for x in items]
    return _scalar(col.elem, col.elem_typtype, items)


def payload_value(col, text):
    """SPEC §3 payload value of one column from its text form (None = SQL NULL)."""
    if text is None:
        return None
    if col.elem is not None:
        return _map_nested(parse_array(text), col)
    return _scalar(col.typname, col.typtype, text)


# --- vectors ------------------------------------------------------------------

def vector_value(col, text):
    """Dense vector (list of float) or sparse ({"indices","values"}) from a column's text."""
    if col.typname == "sparsevec":
        body, _dim = text.rsplit("/", 1)
        body = body.strip()[1:-1].strip()
        indices, values = [], []
        if body:
            for pair in body.split(","):
                i, v = pair.split(":")
                indices.append(int(i) - 1)
                values.append(float(v))
        return {"indices": indices, "values": values}
    if col.typname in PGVECTOR_DENSE:
        body = text.strip()[1:-1].strip()
        return [float(x) for x in body.split(",")] if body else []
    if col.elem in INT_TYPES | FLOAT_TYPES | {"numeric"}:
        items = parse_array(text)
        if any(isinstance(x, list) or x is None for x in items):
            raise ValueError("vector %s is not a one-dimensional array without NULLs: %r" % (col.name, text))
        return [float(x) for x in items]
    raise ValueError("column %s of type %s cannot be a vector" % (col.name, col.typname))


# --- rows -> points -------------------------------------------------------------

def expected_points(spec, columns, rows):
    """The points of a table: {point id: {"vector": ..., "payload": {...}}}.

    columns: [Column] in table order; rows: [[text or None per column]]."""
    by_name = {c.name: i for i, c in enumerate(columns)}
    vector_cols = set(spec.vectors.values())
    if spec.payload == "*":
        payload_cols = [c.name for c in columns if c.name not in vector_cols]
    else:
        payload_cols = list(spec.payload)
    points = {}
    for row in rows:
        vtexts = {name: row[by_name[col]] for name, col in spec.vectors.items()}
        if vtexts and all(t is None for t in vtexts.values()):
            continue  # a NULL vector (with named vectors: all of them NULL): the row has no point
        vectors = {name: vector_value(columns[by_name[spec.vectors[name]]], t)
                   for name, t in vtexts.items() if t is not None}  # NULL named vectors are left out
        vector = vectors[""] if list(vectors) == [""] else vectors
        key_cols = [columns[by_name[k]] for k in spec.key]
        key_texts = [row[by_name[k]] for k in spec.key]
        pid = point_id(key_cols, key_texts, spec.id_mode == "uuid5")
        payload = {name: payload_value(columns[by_name[name]], row[by_name[name]]) for name in payload_cols}
        if pid in points:
            raise ValueError("two rows of %s map to point id %r" % (spec.name, pid))
        points[pid] = {"vector": vector, "payload": payload}
    return points


# --- comparison -----------------------------------------------------------------

REL_TOL = 1e-6


def _num_equal(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-30)


def values_equal(a, b):
    """JSON equality with a relative tolerance of 1e-6 for numbers (ints exact)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return _num_equal(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return a == b


def _sparse_as_map(v):
    return dict(zip(v["indices"], v["values"]))


def vectors_equal(expected, actual):
    if isinstance(expected, dict) and "indices" in expected:
        if not (isinstance(actual, dict) and "indices" in actual and "values" in actual):
            return False
        e, a = _sparse_as_map(expected), _sparse_as_map(actual)
        return e.keys() == a.keys() and all(_num_equal(e[k], a[k]) for k in e)
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(vectors_equal(expected[k], actual[k]) for k in expected))
    return values_equal(expected, actual)


def normalize_id(pid):
    return str(uuid.UUID(pid)) if isinstance(pid, str) else pid


def diff_points(expected, actual):
    """(missing ids, extra ids, [(id, what, expected, actual)]) between two point maps."""
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    differing = []
    for k in expected:
        if k not in actual:
            continue
        e, a = expected[k], actual[k]
        if not vectors_equal(e["vector"], a.get("vector")):
            differing.append((k, "vector", e["vector"], a.get("vector")))
        if not values_equal(e["payload"], a.get("payload") or {}):
            differing.append((k, "payload", e["payload"], a.get("payload")))
    return missing, extra, differing


# --- self-test --------------------------------------------------------------------

def selftest():
    int8 = Column("id", "int8")
    assert point_id([int8], ["42"]) == 42
    assert point_id([int8], ["-7"]) == str(uuid.uuid5(uuid.NAMESPACE_URL, "-7"))
    assert point_id([int8], ["42"], force_uuid5=True) == str(uuid.uuid5(uuid.NAMESPACE_URL, "42"))
    assert point_id([Column("u", "uuid")], ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"]) == \
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    comp = point_id([Column("r", "text"), Column("n", "int4")], ["süd", "42"])
    assert comp == str(uuid.uuid5(uuid.NAMESPACE_URL, '["süd","42"]')), comp
    # the namespace of SPEC §3
    assert str(uuid.NAMESPACE_URL) == "6ba7b811-9dad-11d1-80b4-00c04fd430c8"

    assert parse_array('{a,"b c",NULL,"x\\"y","NULL"}') == ["a", "b c", None, 'x"y', "NULL"]
    assert parse_array("{{1,2},{3,NULL}}") == [["1", "2"], ["3", None]]
    assert parse_array("{}") == []
    assert parse_array("[0:1]={7,8}") == ["7", "8"]

    assert payload_value(Column("a", "_int4", elem="int4"), "{{1,2},{3,4}}") == [[1, 2], [3, 4]]
    assert payload_value(Column("a", "_text", elem="text"), '{"a,b",c}') == ["a,b", "c"]
    assert payload_value(Column("f", "float8"), "NaN") == "NaN"
    assert payload_value(Column("f", "float4"), "-Infinity") == "-Infinity"
    assert payload_value(Column("n", "numeric"), "12345678901234567890.5") == 12345678901234567890.5
    assert payload_value(Column("b", "bytea"), "\\xdeadbeef") == "3q2+7w=="
    assert payload_value(Column("t", "timestamp"), "2024-02-29 13:14:15.123456") == "2024-02-29T13:14:15.123456"
    assert payload_value(Column("t", "timestamptz"), "2024-02-29 11:14:15.5+00") == "2024-02-29T11:14:15.5Z"
    assert payload_value(Column("d", "date"), "infinity") == "infinity"
    assert payload_value(Column("j", "jsonb"), '{"a": [1, null]}') == {"a": [1, None]}
    assert payload_value(Column("b", "bool"), "f") is False

    assert vector_value(Column("s", "sparsevec"), "{1:0.5,7:0.2}/10") == \
        {"indices": [0, 6], "values": [0.5, 0.2]}
    assert vector_value(Column("v", "vector"), "[1,2.5,3]") == [1.0, 2.5, 3.0]
    assert vector_value(Column("v", "_numeric", elem="numeric"), "{1.5,2}") == [1.5, 2.0]

    assert values_equal({"a": [1, 0.1]}, {"a": [1, 0.10000000149011612]})
    assert not values_equal({"a": 1}, {"a": True})
    assert not values_equal(0.1, 0.1001)
    assert vectors_equal({"indices": [0, 6], "values": [0.5, 0.2]}, {"indices": [6, 0], "values": [0.2, 0.5]})

    spec = TableSpec("public.t", "t", ["id"], {"": "v"}, payload="*")
    cols = [Column("id", "int8"), Column("v", "_float4", elem="float4"), Column("x", "text")]
    pts = expected_points(spec, cols, [["1", "{1,2}", "a"], ["2", None, "b"]])
    assert pts == {1: {"vector": [1.0, 2.0], "payload": {"id": 1, "x": "a"}}}, pts
    named = TableSpec("public.n", "n", ["id"], {"a": "a", "b": "b"}, payload=[])
    cols = [Column("id", "int4"), Column("a", "_float4", elem="float4"), Column("b", "sparsevec")]
    pts = expected_points(named, cols, [["1", "{1}", None], ["2", None, None]])
    assert pts == {1: {"vector": {"a": [1.0]}, "payload": {}}}, pts
    return True


if __name__ == "__main__":
    selftest()
    print("expected.py self-test passed")
