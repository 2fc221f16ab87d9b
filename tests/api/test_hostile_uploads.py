"""Malformed and hostile files through the real API of a real server process: every one gets
a 4xx with a message a person can read (or, for odd-but-valid images, a result), never a 5xx,
and the server's peak memory stays bounded (a 0.5 MB decompression bomb must not explode)."""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.live_server import LiveServer

MARKER = Path("/tmp/carelens-hostile-pickle-ran")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 20000) -> bytes:
    """A 400-megapixel all-black PNG that compresses to well under a megabyte."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + one grey byte per pixel
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(
        b"IEND", b"")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def photo(size=(640, 480)) -> Image.Image:
    rng = np.random.default_rng(0)
    base = np.full((size[1], size[0], 3), (205, 160, 140), np.uint8)
    yy, xx = np.mgrid[: size[1], : size[0]]
    spot = (yy - size[1] / 2) ** 2 + (xx - size[0] / 2) ** 2 < (min(size) / 5) ** 2
    base[spot] = (90, 55, 40)
    noisy = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy)


class EvilPickle:
    def __reduce__(self):
        return (MARKER.write_text, ("pwned",))


def hostile_cases() -> list[tuple[str, str, list[tuple[str, bytes]], set[int]]]:
    """(case, kind, files, allowed statuses). 4xx-only cases must be refused; odd but valid
    images may also produce a result (201)."""
    good = photo()
    jpeg = encode(good, "JPEG", quality=90)
    png = encode(good, "PNG")
    refused = {400, 413, 415, 422}
    result_or_refused = {201, 422}
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    animated = [photo((200, 200)), photo((200, 200)).rotate(90)]
    apng = io.BytesIO()
    animated[0].save(apng, format="PNG", save_all=True, append_images=animated[1:])
    gif = io.BytesIO()
    animated[0].save(gif, format="GIF", save_all=True, append_images=animated[1:])
    webp_anim = io.BytesIO()
    animated[0].save(webp_anim, format="WEBP", save_all=True, append_images=animated[1:])
    sixteen = Image.fromarray((np.linspace(0, 65535, 256 * 256).reshape(256, 256)).astype(np.uint16))
    cmyk = good.convert("CMYK")
    return [
        ("zero-byte", "skin", [("empty.jpg", b"")], {400, 422}),
        ("random bytes", "skin", [("noise.jpg", np.random.default_rng(1).bytes(4096))], refused),
        ("plain text", "ear", [("note.jpg", b"hello, this is not a photo")], refused),
        ("html with script", "skin", [("x.png", b"<html><script>alert(1)</script></html>")], refused),
        ("svg", "skin", [("x.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')], refused),
        ("pdf", "ear", [("x.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF")], refused),
        ("truncated jpeg", "skin", [("cut.jpg", jpeg[: len(jpeg) // 3])], refused),
        ("jpeg header only", "skin", [("head.jpg", jpeg[:20])], refused),
        ("truncated png", "ear", [("cut.png", png[: len(png) // 2])], refused),
        ("png bad crc", "skin", [("crc.png", png[:33] + b"\x00\x00\x00\x00" + png[37:])], refused),
        ("decompression bomb png", "skin", [("bomb.png", bomb_png())], refused),
        ("bomb declared huge, tiny body", "ear", [("huge.png", b"\x89PNG\r\n\x1a\n" + png_chunk(
            b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)))], refused),
        ("1x1 png", "skin", [("dot.png", encode(Image.new("RGB", (1, 1)), "PNG"))], refused),
        ("blank white", "skin", [("white.jpg", encode(Image.new("RGB", (800, 600), "white"), "JPEG"))], refused),
        ("blank black", "ear", [("black.png", encode(Image.new("RGB", (800, 600)), "PNG"))], refused),
        ("animated gif", "skin", [("anim.gif", gif.getvalue())], refused),
        ("static gif", "ear", [("still.gif", encode(good, "GIF"))], refused),
        ("bmp", "skin", [("x.bmp", encode(good, "BMP"))], refused),
        ("tiff", "skin", [("x.tif", encode(good, "TIFF"))], refused),
        ("broken webp", "ear", [("x.webp", b"RIFF\x20\x00\x00\x00WEBPVP8 garbage-garbage")], refused),
        ("zip archive as photo", "skin", [("x.jpg", b"PK\x03\x04" + b"\x00" * 200)], refused),
        ("over the byte limit", "skin", [("big.jpg", b"\xff\xd8\xff" + b"\x00" * (13 * 1024 * 1024))], {413}),
        ("polyglot jpeg+zip", "skin", [("poly.jpg", jpeg + b"PK\x03\x04payload" * 50)], result_or_refused),
        ("png named .jpg", "skin", [("really-png.jpg", png)], result_or_refused),
        ("jpeg named .png", "ear", [("really-jpeg.png", jpeg)], result_or_refused),
        ("16-bit grey png", "skin", [("deep.png", encode(sixteen, "PNG"))], result_or_refused),
        ("cmyk jpeg", "skin", [("cmyk.jpg", encode(cmyk, "JPEG"))], result_or_refused),
        ("exif rotated jpeg", "skin", [("rot.jpg", encode(good, "JPEG", exif=exif.tobytes()))], result_or_refused),
        ("animated png", "skin", [("anim.png", apng.getvalue())], result_or_refused),
        ("animated webp", "ear", [("anim.webp", webp_anim.getvalue())], result_or_refused),
        ("extreme aspect", "skin", [("strip.png", encode(photo((4000, 40)), "PNG"))], result_or_refused),
        ("ecg: header without data", "ecg", [("r.hea", b"r 12 500 5000\nr.dat 16 1000 16 0 0 0 0 I\n")], refused),
        ("ecg: csv garbage", "ecg", [("r.csv", b"I,II\nfoo,bar\n,,\n")], refused),
        ("ecg: malicious pickle", "ecg", [("evil.pkl", pickle.dumps(EvilPickle()))], refused),
        ("ecg: object npy", "ecg", [("obj.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (3,), }" + b" " * 50 + b"\n")], refused),
        ("ecg: truncated edf", "ecg", [("r.edf", b"0       " + b"X" * 100)], refused),
        ("ecg: hdf5 magic only", "ecg", [("r.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)], refused),
        ("ecg: wfdb claims 10^9 samples", "ecg", [
            ("r.hea", b"r 1 500 1000000000\nr.dat 16 1000 16 0 0 0 0 I\n"),
            ("r.dat", b"\x00\x01" * 100)], refused),
        ("ecg: text page photo", "ecg", [("page.jpg", encode(Image.new("RGB", (900, 1200), "white"), "JPEG"))], refused),
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("hostile"))
    live.start()
    yield live
    live.stop()


def test_hostile_files_get_clear_4xx_and_memory_stays_bounded(server):
    MARKER.unlink(missing_ok=True)
    headers = server.register("hostile@example.org")
    cases = hostile_cases()
    assert len(cases) >= 30
    outcomes = []
    for name, kind, files, allowed in cases:
        response = httpx.post(f"{server.url}/api/v1/checks/{kind}", headers=headers,
                              files=[("file", f) for f in files], timeout=120)
        outcomes.append((name, response.status_code))
        assert response.status_code < 500, (name, response.status_code, response.text[:300])
        assert response.status_code in allowed, (name, response.status_code, response.text[:300])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error, str) and len(error) > 10, (name, error)
            assert "Traceback" not in error
    peak = server.peak_rss_mb()
    print(f"\n{len(cases)} hostile files: " + ", ".join(f"{n}={c}" for n, c in outcomes))
    print(f"server peak RSS during the run: {peak:.0f} MB")
    assert not MARKER.exists(), "the malicious pickle ran"
    assert peak < 800, f"server peak memory {peak:.0f} MB"


def test_polyglot_payload_is_not_stored(server):
    headers = server.register("poly@example.org")
    jpeg = encode(photo(), "JPEG", quality=90)
    response = httpx.post(f"{server.url}/api/v1/checks/skin", headers=headers, timeout=120,
                          files={"file": ("poly.jpg", jpeg + b"PK\x03\x04SECRET-PAYLOAD")})
    if response.status_code == 201:
        stored = httpx.get(f"{server.url}/api/v1/checks/{response.json()['id']}/input",
                           headers=headers, timeout=30)
        assert stored.status_code == 200
        assert b"SECRET-PAYLOAD" not in stored.content and b"Exif" not in stored.content[:200]
    else:
        assert response.status_code == 422
    uploads = list((server.data_dir / "uploads").glob("*")) if (server.data_dir / "uploads").exists() else []
    assert all(b"SECRET-PAYLOAD" not in p.read_bytes() for p in uploads)
