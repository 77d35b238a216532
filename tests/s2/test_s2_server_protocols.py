"""The bundled S2 server's protobuf bodies, ``s2s/proto`` sessions, configuration and CLI.

Requests go in-process through ``httpx.ASGITransport`` (it sends a whole request body, then
reads the whole response, which is enough for bounded sessions); the official SDKs exercise
the same paths over real HTTP/2 in ``test_official_sdks.py``.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
import zstandard

from resumable_chat.testing import s2_pb2 as pb
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2s_framing import (
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
    encode_terminal,
)

MakeClient = Callable[..., httpx.AsyncClient]
PROTO = "application/protobuf"


def _input(*bodies: bytes, **options: object) -> pb.AppendInput:
    records = [
        pb.AppendRecord(body=b, headers=[pb.Header(name=b"h", value=b"\xff")]) for b in bodies
    ]
    return pb.AppendInput(records=records, **options)  # type: ignore[arg-type]


def _frames(data: bytes) -> list[Frame]:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert decoder.pending == 0
    return frames


async def test_protobuf_append_and_read(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name()}
        url = "/v1/streams/p/records"
        body = _input(b"\x00\x01", b"two").SerializeToString()
        ack = await client.post(
            url, content=body, headers={**h, "content-type": PROTO, "accept": PROTO}
        )
        assert ack.headers["content-type"] == PROTO
        parsed = pb.AppendAck.FromString(ack.content)
        assert (parsed.start.seq_num, parsed.end.seq_num, parsed.tail.seq_num) == (0, 2, 2)
        # a protobuf body with a JSON answer (the first Accept type decides)
        ack = await client.post(
            url,
            content=_input(b"3", match_seq_num=2).SerializeToString(),
            headers={**h, "content-type": "application/x-protobuf"},
        )
        assert ack.json()["end"]["seq_num"] == 3

        read = await client.get(f"{url}?seq_num=0", headers={**h, "accept": PROTO})
        batch = pb.ReadBatch.FromString(read.content)
        assert [
            (r.seq_num, r.body, [(x.name, x.value) for x in r.headers]) for r in batch.records
        ] == [
            (0, b"\x00\x01", [(b"h", b"\xff")]),
            (1, b"two", [(b"h", b"\xff")]),
            (2, b"3", [(b"h", b"\xff")]),
        ]
        assert batch.HasField("tail") and batch.tail.seq_num == 3
        as_json = await client.get(f"{url}?seq_num=0", headers={**h, "s2-format": "base64"})
        assert [r["seq_num"] for r in as_json.json()["records"]] == [0, 1, 2]

        # failures keep S2's JSON bodies
        wrong = await client.post(
            url,
            content=_input(b"x", match_seq_num=0).SerializeToString(),
            headers={**h, "content-type": PROTO, "accept": PROTO},
        )
        assert (wrong.status_code, wrong.json()) == (412, {"seq_num_mismatch": 3})
        bad = await client.post(url, content=b"\xff\xff\xff", headers={**h, "content-type": PROTO})
        assert (bad.status_code, bad.json()["code"]) == (400, "bad_proto")
        past = await client.get(f"{url}?seq_num=9", headers={**h, "accept": PROTO})
        assert (past.status_code, past.json()) == (416, {"tail": as_json.json()["tail"]})


async def test_compressed_request_bodies(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name(), "content-type": "application/json"}
        body = b'{"records":[{"body":"zipped"}]}'
        for encoding, data in (
            ("gzip", gzip.compress(body)),
            ("zstd", zstandard.ZstdCompressor().compress(body)),
        ):
            ack = await client.post(
                "/v1/streams/z/records", content=data, headers={**h, "content-encoding": encoding}
            )
            assert ack.status_code == 200, ack.text
        odd = await client.post(
            "/v1/streams/z/records", content=body, headers={**h, "content-encoding": "br"}
        )
        assert (odd.status_code, odd.json()["code"]) == (400, "bad_header")


async def test_s2s_append_session_acks_in_order_then_ends_on_a_failed_condition(
    asgi_client: MakeClient,
) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name(), "content-type": "s2s/proto"}
        frames = b"".join(
            [
                encode_frame(_input(b"a").SerializeToString()),
                encode_frame(_input(b"b" * 2000).SerializeToString(), "gzip"),
                encode_frame(_input(b"c", match_seq_num=2).SerializeToString(), "zstd"),
                encode_frame(_input(b"d", match_seq_num=0).SerializeToString()),
                encode_frame(_input(b"never").SerializeToString()),
            ]
        )
        response = await client.post("/v1/streams/sess/records", content=frames, headers=h)
        assert response.status_code == 200
        assert response.headers["content-type"] == "s2s/proto"
        *acks, terminal = _frames(response.content)
        assert [
            (a.start.seq_num, a.end.seq_num)
            for a in (pb.AppendAck.FromString(f.body) for f in acks)
        ] == [(0, 1), (1, 2), (2, 3)]
        assert terminal.terminal and terminal.status == 412
        assert terminal.body == b'{"seq_num_mismatch":3}'
        tail = await client.get(
            "/v1/streams/sess/records/tail", headers={"S2-Basin": h["S2-Basin"]}
        )
        assert tail.json()["tail"]["seq_num"] == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\x00\x00\x00", "bad_frame"),  # length 0: no flag byte
        (b"\x00\x00\x02\x60\x00", "bad_frame"),  # unknown compression code 3
        (encode_frame(b"\xff\xff"), "bad_proto"),
        (encode_terminal(400, {"code": "x"}), "bad_frame"),  # clients send no terminal frames
        (encode_frame(b"")[:2], "bad_frame"),  # the body ends inside a frame
    ],
)
async def test_s2s_append_session_rejects_malformed_input(
    asgi_client: MakeClient, body: bytes, code: str
) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name(), "content-type": "s2s/proto"}
        response = await client.post("/v1/streams/bad/records", content=body, headers=h)
        (terminal,) = _frames(response.content)
        assert terminal.terminal and terminal.status == 400
        assert f'"code":"{code}"' in terminal.body.decode()


async def test_s2s_read_session_sends_batches_then_a_heartbeat(asgi_client: MakeClient) -> None:
    async with asgi_client(ping_interval_s=0.2) as client:
        basin = unique_basin_name()
        big = "x" * 1500
        await client.post(
            "/v1/streams/r/records",
            json={"records": [{"body": "one"}, {"body": big}]},
            headers={"S2-Basin": basin},
        )
        h = {"S2-Basin": basin, "content-type": "s2s/proto", "accept-encoding": "gzip"}
        response = await client.get("/v1/streams/r/records?seq_num=0&wait=1", headers=h)
        assert response.status_code == 200
        frames = _frames(response.content)
        assert not any(f.terminal for f in frames)  # a wait that runs out ends it plainly
        batches = [pb.ReadBatch.FromString(f.body) for f in frames]
        assert [r.body for r in batches[0].records] == [b"one", big.encode()]
        assert response.content[3] & 0x60 == 0x40  # that frame is over 1 KiB: gzip
        heartbeats = batches[1:]
        assert heartbeats and all(not b.records and b.tail.seq_num == 2 for b in heartbeats)

        # bounded by count: the session ends after the records, without a terminal frame
        limited = await client.get("/v1/streams/r/records?seq_num=1&count=1", headers=h)
        (only,) = _frames(limited.content)
        assert [r.seq_num for r in pb.ReadBatch.FromString(only.body).records] == [1]
        # errors before the session starts are plain HTTP answers
        past = await client.get("/v1/streams/r/records?seq_num=9", headers=h)
        assert (past.status_code, past.json()["tail"]["seq_num"]) == (416, 2)


def test_frame_decoder_reassembles_split_frames() -> None:
    data = (
        encode_frame(b"hello")
        + encode_frame(b"x" * 3000, "zstd")
        + encode_terminal(503, {"code": "unavailable", "message": "m"})
    )
    decoder = FrameDecoder()
    frames = [f for i in range(0, len(data), 7) for f in decoder.feed(data[i : i + 7])]
    assert [f.body for f in frames[:2]] == [b"hello", b"x" * 3000]
    assert (frames[2].terminal, frames[2].status) == (True, 503)
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\x40\x00\x00\x00")  # over 2 MiB


async def test_stream_and_basin_configuration(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name()}
        created = await client.post(
            "/v1/streams",
            json={"stream": "c", "config": {"retention_policy": {"infinite": {}}}},
            headers={**h, "s2-request-token": "tok-1"},
        )
        assert (created.status_code, created.headers["s2-provision-result"]) == (201, "created")
        again = await client.post(
            "/v1/streams", json={"stream": "c"}, headers={**h, "s2-request-token": "tok-1"}
        )
        assert (again.status_code, again.headers["s2-provision-result"]) == (201, "noop")
        clash = await client.post("/v1/streams", json={"stream": "c"}, headers=h)
        assert clash.status_code == 409
        config = (await client.get("/v1/streams/c", headers=h)).json()
        assert config["retention_policy"] == {"infinite": {}}
        assert config["timestamping"] == {"mode": "client-prefer", "uncapped": False}
        patched = await client.patch(
            "/v1/streams/c",
            json={"storage_class": "standard", "timestamping": {"mode": "arrival"}},
            headers=h,
        )
        assert patched.json()["storage_class"] == "standard"
        assert patched.json()["timestamping"]["mode"] == "arrival"
        reset = await client.patch("/v1/streams/c", json={"storage_class": None}, headers=h)
        assert reset.json()["storage_class"] == "express"
        same = await client.put("/v1/streams/c", json={"storage_class": "express"}, headers=h)
        assert (same.status_code, same.headers["s2-provision-result"]) == (200, "noop")
        bad = await client.patch("/v1/streams/c", json={"storage_class": 7}, headers=h)
        assert (bad.status_code, bad.json()["code"]) == (400, "bad_json")
        zero = await client.patch("/v1/streams/c", json={"retention_policy": {"age": 0}}, headers=h)
        assert (zero.status_code, zero.json()["code"]) == (422, "invalid")

        basin = unique_basin_name()
        made = await client.put(
            f"/v1/basins/{basin}",
            json={"config": {"default_stream_config": {"storage_class": "standard"}}},
        )
        assert (made.status_code, made.json()["scope"]) == (201, None)
        await client.put("/v1/streams/d", headers={"S2-Basin": basin})
        inherited = await client.get("/v1/streams/d", headers={"S2-Basin": basin})
        assert inherited.json()["storage_class"] == "standard"


@pytest.mark.parametrize("blocked", ["hypercorn", "google.protobuf"])
def test_the_command_line_names_the_extra_when_it_is_missing(blocked: str) -> None:
    code = (
        f"import sys, runpy; sys.modules[{blocked!r}] = None; "
        "sys.argv = ['s2_server', '--port', '0']; "
        "runpy.run_module('resumable_chat.testing.s2_server', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'resumable-chat[testing]'" in lines[0]


def test_help_lists_what_is_implemented() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "resumable_chat.testing.s2_server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in ("append", "read", "check_tail", "reconfigure_stream", "s2s/proto"):
        assert name in text
    assert "501 not_implemented: list_access_tokens" in text
