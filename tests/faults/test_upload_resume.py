"""The gateway SIGKILLed in the middle of a resumable upload's PATCH, then the upload resumed
with a tus client through the gateway process started after it: every byte a 204
acknowledged is kept, and the file becomes one import with every row once."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator

import aiohttp
from tusclient import client as tus_client

from tests.faults.conftest import CHUNK_SIZE, Scenario

UPLOADS = "/api/v1/database/uploads"
TUS = {"Tus-Resumable": "1.0.0"}


async def test_a_gateway_killed_mid_patch_loses_no_acknowledged_byte(scenario: Scenario) -> None:
    data = scenario.source.read_bytes()
    api = scenario.stack.api_url
    auth = {"Authorization": f"Bearer {scenario.key}"}
    table = base64.b64encode(scenario.table.encode()).decode()
    async with aiohttp.ClientSession(headers=auth) as session:
        created = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": f"table {table}"}
        async with session.post(
            api + UPLOADS, headers=created, params={"chunk_size": str(CHUNK_SIZE)}
        ) as answer:
            assert answer.status == 201, await answer.text()
            url = api + answer.headers["Location"]
        third = len(data) // 3
        patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
        async with session.patch(
            url, data=data[:third], headers={**patch, "Upload-Offset": "0"}
        ) as answer:
            assert answer.status == 204
            acknowledged = int(answer.headers["Upload-Offset"])
        assert acknowledged == third

        sent = asyncio.Event()

        async def slowly() -> AsyncIterator[bytes]:
            yield data[third : 2 * third]
            sent.set()
            await asyncio.sleep(60)  # the gateway dies meanwhile
            yield data[2 * third :]

        async def cut_off() -> None:
            headers = {**patch, "Upload-Offset": str(third)}
            try:
                async with session.patch(url, data=slowly(), headers=headers) as answer:
                    await answer.read()
            except aiohttp.ClientError:
                return
            raise AssertionError("the PATCH was answered")

        sending = asyncio.create_task(cut_off())
        await sent.wait()
        await asyncio.sleep(0.5)
        scenario.kill("gateway")
        await asyncio.wait_for(sending, 30)
        scenario.restart("gateway")
        await scenario.wait_ready("gateway")
        async with session.head(url, headers=TUS) as answer:
            assert answer.status == 200
            kept = int(answer.headers["Upload-Offset"])
        assert acknowledged <= kept < len(data)

    def resume() -> None:
        client = tus_client.TusClient(api + UPLOADS, headers=auth)
        uploader = client.uploader(file_stream=io.BytesIO(data), url=url)
        assert uploader.offset == kept
        uploader.upload()

    await asyncio.to_thread(resume)
    import_id = await scenario.db.fetchval(
        "SELECT import_id FROM tidegate.uploads WHERE id = $1::uuid", url.rsplit("/", 1)[1]
    )
    assert import_id is not None
    await scenario.assert_true_final_state(str(import_id))
