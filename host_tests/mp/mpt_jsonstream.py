# mpocpp/protocol/jsonstream.py: large OCPP-J frames read from a file one
# piece at a time (the head, the payload's members, the elements of a list).
import io
import json

from mpocpp.protocol import jsonstream


def _walk(text, items="localAuthorizationList", limit=1024):
    if isinstance(text, str):
        text = text.encode()
    fr = jsonstream.head(io.BytesIO(text))
    return fr.kind, fr.id, fr.action, list(jsonstream.members(fr.stream, items, limit))


def test_head_and_members_in_any_order_and_spacing():
    entries = [{"idTag": "T%d" % i, "idTagInfo": {"status": "Accepted",
               "parentIdTag": "G", "expiryDate": "2030-01-01T00:00:00Z"}} for i in range(40)]
    for sep in ((",", ":"), (", ", ": ")):
        body = json.dumps({"updateType": "Full", "localAuthorizationList": entries,
                           "listVersion": 7}, separators=sep)
        text = ' [ 2 , "id\\"1" , "SendLocalList" , %s ] \n' % body
        kind, mid, action, got = _walk(text)
        assert (kind, mid, action) == (2, 'id"1', "SendLocalList")
        items = [v for k, v in got if k == "localAuthorizationList"]
        assert items == entries
        other = {k: v for k, v in got if k != "localAuthorizationList"}
        assert other == {"updateType": "Full", "listVersion": 7}


def test_strings_with_brackets_and_escapes():
    e = {"idTag": "a]}{[,\\\"x", "idTagInfo": {"status": "Accepted"}}
    text = '[2,"1","SendLocalList",{"localAuthorizationList":[%s,{}],"x":[1,[2]]}]' % \
        json.dumps(e)
    got = _walk(text)[3]
    assert got == [("localAuthorizationList", e), ("localAuthorizationList", {}),
                   ("x", [1, [2]])]


def test_answers_and_empty():
    fr = jsonstream.head(io.BytesIO(b'[3,"9",{}]'))
    s, kind, mid, action = fr.stream, fr.kind, fr.id, fr.action
    assert (kind, mid, action) == (3, "9", None)
    assert list(jsonstream.members(s, "x")) == []
    assert _walk('[2,"1","SendLocalList",{"localAuthorizationList":[]}]')[3] == []


def test_bad_frames_raise_value_error():
    bad = ('[2,"1","SendLocalList",{"a":1',          # truncated
           '[2,"1","SendLocalList",{"a":tru}]',       # not JSON
           '[2,"1","SendLocalList",{"a":1}]x',        # trailing data
           '[2,"1","SendLocalList",{"a":"%s"}]' % ("x" * 2000),  # over the limit
           '[2,1,"SendLocalList",{}]',                # id not a string
           '{"a":1}',                                 # not a frame
           b'[2,"1","SendLocalList",{"localAuthorizationList":[{"idTag":"\xff"}]}]',  # UTF-8
           '')
    for t in bad:
        try:
            _walk(t)
        except ValueError:
            continue
        raise AssertionError(t)


def test_a_large_list_needs_no_large_block():
    # 255 entries with expiryDate and parentIdTag (about 25 KB of text): the
    # walk allocates nothing that grows with the list.
    import gc
    e = ('{"idTag":"%020d","idTagInfo":{"status":"Accepted","expiryDate":"2030-01-01T00:00:00Z",'
         '"parentIdTag":"PARENT%014d"}}')
    body = ",".join(e % (i, i) for i in range(255))
    text = ('[2,"1","SendLocalList",{"listVersion":1,"updateType":"Full",'
            '"localAuthorizationList":[%s]}]' % body).encode()
    assert len(text) > 24000
    f = io.BytesIO(text)
    del text, body
    gc.collect()
    s = jsonstream.head(f).stream
    n = 0
    peak = 0
    base = gc.mem_alloc()
    for k, v in jsonstream.members(s, "localAuthorizationList"):
        n += 1
        gc.collect()
        peak = max(peak, gc.mem_alloc() - base)
    assert n == 257 and peak < 4096, (n, peak)


class _Sp:
    # ws.Spilled's shape: a path and a size
    def __init__(self, text):
        self.path = "/tmp/mpt_jsonstream_%d.msg" % id(self)
        with open(self.path, "wb") as f:
            f.write(text.encode())
        self.size = len(text)


def test_a_spilled_message_gets_its_surrogates_joined():
    # Found left over by the fuzz campaign: a message over the receive buffer
    # is parsed from its file, where the text's escapes cannot be decoded
    # first; pairs become the character, a lone one U+FFFD, keys included.
    import os
    pad = "x" * 5000
    text = ('[2,"m1","DataTransfer",{"vendorId":"V","messageId":"\\ud83d\\ude00 ok",'
            '"data":"%s\\udc00 \\uD83D\\uDE00\\ud800","\\ud800k":1}]' % pad)
    sp = _Sp(text)
    # the escape cut by the scan's chunks is still found
    for cut in range(250, 262):
        t = '["%s\\ud800"]' % ("y" * cut)
        assert jsonstream._surrogate_escape(io.BytesIO(t.encode())), cut
    assert not jsonstream._surrogate_escape(io.BytesIO(b'["\\u0041 no", "\\\\"]'))
    try:
        fr = jsonstream.spilled(sp, ("SendLocalList",), 1024)
    finally:
        os.remove(sp.path)
    p = fr.message[3]
    assert (fr.kind, fr.id, fr.action) == (2, "m1", "DataTransfer")
    assert p["messageId"] == "\U0001f600 ok"
    assert p["data"] == pad + "\ufffd \U0001f600\ufffd"
    assert p["\ufffdk"] == 1
    for k, v in p.items():  # all valid UTF-8 now: an answer echoing them is too
        k.encode().decode()
        str(v).encode().decode()


def test_a_spilled_message_without_escapes_is_left_as_it_is():
    import os
    sp = _Sp('[2,"m2","DataTransfer",{"vendorId":"V","data":"%s\\u00e9"}]' % ("z" * 5000))
    try:
        r = jsonstream.spilled(sp, (), 1024)
    finally:
        os.remove(sp.path)
    assert r.message[3]["data"] == "z" * 5000 + "\u00e9"


def test_a_deeply_nested_spilled_message_is_repaired_without_recursion():
    # Found by tools/fuzz (seed 2, frame 1,595, 32-bit port): a DataTransfer
    # nested far deeper than the interpreter's stack, kept in flash and
    # holding a surrogate escape, made the repair recurse until
    # "maximum recursion depth exceeded" dropped the connection.
    import os
    deep = 3000
    text = '[2,"m3","DataTransfer",{"vendorId":"V","data":%s"\\ud83d\\ude00 \\udc00"%s}]' % (
        "[" * deep, "]" * deep)
    sp = _Sp(text)
    try:
        r = jsonstream.spilled(sp, (), 1024)
    finally:
        os.remove(sp.path)
    v = r.message[3]["data"]
    for _ in range(deep):
        v = v[0]
    assert v == "\U0001f600 \ufffd", repr(v)
