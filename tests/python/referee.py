"""Referee: the official api.video Python client (api-video==1.4.7), unchanged, against
`ingestd emulator`.

Usage: referee.py BASE_URL API_KEY WORK_DIR
Exits 0 and prints "referee: OK (N checks)" when every check passes; any failure raises.
"""

import hashlib
import json
import os
import sys
import urllib.request

import apivideo
from apivideo.api_client import ApiClient
from apivideo.api.upload_tokens_api import UploadTokensApi
from apivideo.api.videos_api import VideosApi
from apivideo.exceptions import ApiException, NotFoundException
from apivideo.model.metadata import Metadata
from apivideo.model.token_creation_payload import TokenCreationPayload
from apivideo.model.video_creation_payload import VideoCreationPayload
from apivideo.model.video_update_payload import VideoUpdatePayload

MIB = 1024 * 1024
CHUNK = 5 * MIB  # the client's minimum chunk size

BASE, API_KEY, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def emu(path):
    """The emulator's test-only extras (no auth)."""
    with urllib.request.urlopen(BASE + path) as r:
        return json.load(r)


def emu_videos():
    return emu("/_emulator/videos")["data"]


def make_file(name, size, seed):
    path = os.path.join(WORK, name)
    block = hashlib.sha256(bytes([seed])).digest() * 4096  # 128 KiB pattern
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            piece = hashlib.sha256(block[:64] + i.to_bytes(4, "big")).digest() + block
            piece = piece[: min(left, len(piece))]
            f.write(piece)
            left -= len(piece)
            i += 1
    return path


def sha_of(*paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def expect_status(status, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        check(e.status == status, "expected HTTP %d, got %s" % (status, e.status))
        return e
    raise AssertionError("expected HTTP %d, the call succeeded" % status)


def configured(client):
    client.configuration.host = BASE
    client.configuration.chunk_size = CHUNK
    return client


# ---- API key: AuthenticatedApiClient does POST /auth/api-key on enter (Bearer afterwards).
with configured(apivideo.AuthenticatedApiClient(API_KEY)) as client:
    tokens = UploadTokensApi(client)
    videos = VideosApi(client)

    # Tokens: with and without TTL.
    t_ttl = tokens.create_token(TokenCreationPayload(ttl=3600))
    check(t_ttl.ttl == 3600 and t_ttl.expires_at is not None, "ttl token")
    t_forever = tokens.create_token(TokenCreationPayload())
    check(t_forever.ttl == 0, "token without ttl")
    check(t_forever.token.startswith("to") and len(t_forever.token) == 24, "token id shape")
    t_third = tokens.create_token(TokenCreationPayload(ttl=60))
    all_ids = {t_ttl.token, t_forever.token, t_third.token}

    # List with paging.
    page1 = tokens.list(page_size=2, current_page=1)
    check(len(page1.data) == 2, "page 1 has 2 tokens")
    check(page1.pagination.items_total == 3 and page1.pagination.pages_total == 2, "pagination totals")
    check(any(l.rel == "next" for l in page1.pagination.links), "next link")
    page2 = tokens.list(page_size=2, current_page=2)
    check(len(page2.data) == 1, "page 2 has 1 token")
    check({t.token for t in page1.data + page2.data} == all_ids, "pages cover all tokens")

    # Both sorts.
    by_ttl = [t.ttl for t in tokens.list(sort_by="ttl", sort_order="asc").data]
    check(by_ttl == sorted(by_ttl), "ttl asc")
    by_ttl_desc = [t.ttl for t in tokens.list(sort_by="ttl", sort_order="desc").data]
    check(by_ttl_desc == sorted(by_ttl, reverse=True), "ttl desc")
    created = [t.token for t in tokens.list(sort_by="createdAt", sort_order="asc").data]
    check(created == [t_ttl.token, t_forever.token, t_third.token], "createdAt asc")
    created_desc = [t.token for t in tokens.list(sort_by="createdAt", sort_order="desc").data]
    check(created_desc == list(reversed(created)), "createdAt desc")

    # Show; delete then show → 404.
    shown = tokens.get_token(t_third.token)
    check(shown.token == t_third.token and shown.ttl == 60, "show token")
    tokens.delete_token(t_third.token)
    expect_status(404, tokens.get_token, t_third.token)

    token = t_forever.token

    # ---- Token-only client (no API key): small upload, progressive session, the quirk.
    with configured(ApiClient()) as anon:
        token_videos = VideosApi(anon)

        small = make_file("small.mp4", 1 * MIB + 17, 1)
        v = token_videos.upload_with_upload_token(token, open(small, "rb"))
        check(v.title == "small.mp4", "title is the file name: %r" % v.title)
        rec = emu("/_emulator/videos/" + v.video_id)
        check(rec["complete"] and rec["sha256"] == sha_of(small), "small upload stored")
        check(rec["chunks"][0]["contentRange"] == "part 1/1", "single chunk is part 1/1")

        # Progressive session: part 1/*, part 2/*, part 3/3, videoId copied after the first.
        p1 = make_file("prog1.bin", CHUNK, 2)
        p2 = make_file("prog2.bin", CHUNK, 3)
        p3 = make_file("prog3.bin", 123_456, 4)
        session = token_videos.create_upload_with_upload_token_progressive_session(token)
        session.uploadPart(open(p1, "rb"))
        session.uploadPart(open(p2, "rb"))
        final = session.uploadLastPart(open(p3, "rb"))
        rec = emu("/_emulator/videos/" + final.video_id)
        ranges = [c["contentRange"] for c in rec["chunks"]]
        check(ranges == ["part 1/*", "part 2/*", "part 3/3"], "progressive ranges %r" % ranges)
        check([c["withVideoId"] for c in rec["chunks"]] == [False, True, True], "videoId copied")
        check(rec["complete"] and rec["sha256"] == sha_of(p1, p2, p3), "progressive content")

        # The quirk: multi-chunk upload_with_upload_token omits videoId → one video per chunk.
        before = {x["videoId"] for x in emu_videos()}
        big = make_file("quirk.mp4", 11 * MIB, 5)
        token_videos.upload_with_upload_token(token, open(big, "rb"))
        new = [x for x in emu_videos() if x["videoId"] not in before]
        check(len(new) == 3, "one video per chunk, got %d" % len(new))
        check(all(x["title"] == "quirk.mp4" and x["chunkCount"] == 1 for x in new), "each has one chunk")
        check(all(not x["complete"] for x in new), "none of them is complete")
        check(sorted(x["chunks"][0]["contentRange"] for x in new) == ["part 1/3", "part 2/3", "part 3/3"], "parts")

    # ---- Chunked upload with the API key into a container made with create.
    container = videos.create(VideoCreationPayload(
        title="referee container",
        description="made by referee.py",
        tags=["referee", "emulator"],
        metadata=[Metadata(key="source", value="referee")],
    ))
    check(container.title == "referee container" and container.tags == ["referee", "emulator"], "create")
    body = make_file("keyed.mp4", 11 * MIB, 6)
    uploaded = videos.upload(container.video_id, open(body, "rb"))
    check(uploaded.video_id == container.video_id, "upload returns the container")
    rec = emu("/_emulator/videos/" + container.video_id)
    check(rec["complete"] and rec["sha256"] == sha_of(body), "API-key chunked content")
    check([c["contentRange"] for c in rec["chunks"]] == ["part 1/3", "part 2/3", "part 3/3"], "API-key ranges")
    status = videos.get_status(container.video_id)
    check(status.ingest.status == "uploaded" and status.ingest.received_parts.parts == [1, 2, 3], "status")

    # List videos by title.
    found = videos.list(title="referee container")
    check(len(found.data) == 1 and found.data[0].video_id == container.video_id, "list by title")
    check(found.pagination.items_total == 1, "list pagination")
    check(videos.get(container.video_id).metadata[0].key == "source", "show video")

    # Filters (tags[], metadata[key]), sorting, and an update with PATCH.
    other = videos.create(VideoCreationPayload(
        title="referee other", tags=["referee"], metadata=[Metadata(key="source", value="other")]))
    by_tag = videos.list(tags=["referee"], sort_by="title", sort_order="desc")
    check([v.video_id for v in by_tag.data] == [other.video_id, container.video_id], "list by tag, sorted")
    check([v.video_id for v in videos.list(tags=["referee", "emulator"]).data] == [container.video_id],
          "every tag must match")
    by_meta = videos.list(metadata={"source": "other"})
    check([v.video_id for v in by_meta.data] == [other.video_id], "list by metadata")
    paged = videos.list(tags=["referee"], page_size=1, current_page=2)
    check(len(paged.data) == 1 and paged.pagination.pages_total == 2, "list pages")
    changed = videos.update(other.video_id, VideoUpdatePayload(
        title="referee renamed", description="patched", tags=["patched"],
        metadata=[Metadata(key="state", value="updated")], public=False))
    check(changed.title == "referee renamed" and changed.tags == ["patched"] and changed.public is False,
          "update returns the changed video")
    check(videos.get(other.video_id).metadata[0].value == "updated", "update is stored")
    check(videos.get(other.video_id).description == "patched", "update description")
    check([v.video_id for v in videos.list(metadata={"state": "updated"}).data] == [other.video_id],
          "updated metadata is listed")
    expect_status(404, videos.update, "vi0000000000000000000000", VideoUpdatePayload(title="x"))
    videos.delete(other.video_id)

    # Delete a video → 404.
    videos.delete(container.video_id)
    expect_status(404, videos.get, container.video_id)
    check(not videos.list(title="referee container").data, "deleted video not listed")

print("referee: OK (%d checks)" % checks)
