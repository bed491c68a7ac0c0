"""A big upload through the client library against the minio client writing the same file
straight to storage: throughput ratio, and the client process's peak memory.

Both send parts of the farm's part size, four at a time. The client also hashes the file
(SHA-256, declared so the server can check it) before sending it; that read is included.

    .venv/bin/python -m bench.client_upload --size-mib 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from minio import Minio

from bench._harness import Row, add_json_option, register, start_stack, write_json
from bench.upload_memory import make_file

MIB = 1024 * 1024
CLIENT = """
import asyncio, json, resource, sys, time
from studio_farm import AsyncFarm

async def main():
    async with AsyncFarm(sys.argv[1], api_key=sys.argv[2], parallel=4) as farm:
        started = time.monotonic()
        version, report = await farm.upload(sys.argv[4], sys.argv[3], progress=False)
        print(json.dumps({"seconds": time.monotonic() - started, "size": version.size,
                          "parts": report.parts_sent,
                          "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    add_json_option(parser)
    args = parser.parse_args()
    stack = start_stack(max_upload_bytes=4 * 1024 * MIB)
    try:
        headers = register(stack.base_url)
        with httpx.Client(base_url=stack.base_url, headers=headers, timeout=60) as http:
            key = http.post("/api/v1/api-keys", json={"name": "bench"}).json()["key"]
            asset = http.post("/api/v1/assets", json={"name": "big", "kind": "plate"}).json()
        path = make_file(Path(tempfile.mkdtemp()) / "big.mp4", args.size_mib * MIB)
        s = stack.settings
        minio = Minio(s.s3_endpoint, s.s3_access_key.get_secret_value(),
                      s.s3_secret_key.get_secret_value(), secure=False, region=s.s3_region)
        started = time.monotonic()
        minio.fput_object(s.s3_bucket, "bench/big.mp4", str(path),
                          part_size=s.upload_part_size_bytes, num_parallel_uploads=4)
        direct_s = time.monotonic() - started
        ran = subprocess.run([sys.executable, "-c", CLIENT, stack.base_url, key, asset["id"],
                              str(path)], capture_output=True, text=True, check=True)
        ours = json.loads(ran.stdout)
    finally:
        stack.stop()
    size = args.size_mib * MIB
    direct, client = size / direct_s / MIB, size / ours["seconds"] / MIB
    print(f"{args.size_mib} MiB: minio client straight to storage {direct:.1f} MiB/s, "
          f"studio_farm client {client:.1f} MiB/s (hash + upload + verify), "
          f"ratio {client / direct:.2f}; client peak RSS {ours['peak_rss'] / MIB:.0f} MiB, "
          f"{ours['parts']} parts")
    write_json(args.json, "client_upload", [
        Row(f"{args.size_mib} MiB upload", "MiB/s", "minio client, straight to storage",
            direct, "studio_farm client (SHA-256, parts, complete)", client),
        Row("client peak memory", "MiB", "file size", args.size_mib,
            "studio_farm client process", ours["peak_rss"] / MIB, better="lower")])


if __name__ == "__main__":
    main()
