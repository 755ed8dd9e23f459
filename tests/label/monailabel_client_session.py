# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""A MONAI Label client session, run by ``test_monailabel_server.py`` with ``.venv-label``'s Python (MONAI Label is
not installed in the core environment): ``python monailabel_client_session.py SPEC.json``.

It uses MONAI Label's own client, :class:`monailabel.client.MONAILabelClient`, against a running server: ``info()``,
``infer()`` for each request of ``spec["infer"]`` (``model``, ``file`` to upload or ``image_id``, ``params``),
then ``train_start()`` for ``spec["train"]`` and ``train_status()`` until the task is done (bounded by
``spec["train_timeout"]``). What the server answered goes to ``spec["result"]`` (JSON); the test asserts on it. A
client error (``MONAILabelClientException``) is recorded as that request's ``error``, not raised.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    tmpdir = Path(spec["tmpdir"])
    client = MONAILabelClient(spec["base"], tmpdir=str(tmpdir))
    result: dict = {"info": client.info(), "infer": {}, "train": None}

    for name, call in spec.get("infer", {}).items():
        entry = {"file": None, "params": None, "error": None}
        try:
            answer, params = client.infer(
                call["model"], call.get("image_id", ""), call["params"], file=call.get("file")
            )
        except MONAILabelClientException as err:
            entry["error"] = str(err.msg)
        else:
            if answer:  # the client saves the answer under its server-side file name: keep one file per request
                dest = tmpdir / f"{name}.nii.gz"
                shutil.move(answer, dest)
                entry["file"] = str(dest)
            entry["params"] = params
        result["infer"][name] = entry

    train = spec.get("train")
    if train:
        started = client.train_start(train["model"], train["params"])
        deadline = time.monotonic() + float(spec.get("train_timeout", 420))
        status = client.train_status()
        while status.get("status") not in ("DONE", "ERROR") and time.monotonic() < deadline:
            time.sleep(2.0)
            status = client.train_status()
        if status.get("status") not in ("DONE", "ERROR"):
            client.train_stop()
        result["train"] = {"started": started, "status": status}

    tmp = Path(spec["result"] + ".tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, spec["result"])


if __name__ == "__main__":
    main(sys.argv[1])
