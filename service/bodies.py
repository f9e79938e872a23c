"""The body of a POST that takes either JSON naming a `source` under the data directory, or a
multipart upload of one file with the same fields as strings (POST /datasets: an archive of
recordings; POST /timelines: a video). Either way the request model validates the fields,
so a bad one is the same 422 whichever way it came."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from core.settings import Settings
from service.errors import Problem, field_error

Body = TypeVar("Body", bound=BaseModel)


async def json_or_upload(request: Request, model: type[Body], upload: str, *, upload_is: str, source_is: str
                         ) -> tuple[Body, UploadFile | None]:
    """The validated fields, and the uploaded file (None: JSON, whose `source` is then required)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=40)
        file = form.get(upload)
        if not isinstance(file, UploadFile):
            raise field_error([upload], f"{upload_is} is required in a multipart request")
        fields = {k: None if v == "" else v for k, v in form.items() if k != upload and isinstance(v, str)}
        if "source" in fields:
            raise field_error(["source"], "an upload is its own source: leave `source` out")
        return model.model_validate(fields), file
    try:
        raw = await request.json()
    except ValueError:
        raise field_error(["body"], f"not JSON (or send a multipart upload with `{upload}`)") from None
    body = model.model_validate(raw if isinstance(raw, dict) else {"": raw})
    if getattr(body, "source", None) is None:
        raise field_error(["source"], f"{source_is} under the data directory, or upload {upload_is} as `{upload}` "
                          "(multipart)")
    return body, None


def source_path(source: str, settings: Settings, *, folder: bool) -> Path:
    """A client's `source`, resolved: a folder (or a file) inside the data directory, and not
    in the service's own hidden work folders (another job's upload, an ingest half written)."""
    base = settings.data_dir.resolve()
    path = (settings.data_dir / source).resolve()
    if Path(source).is_absolute() or not path.is_relative_to(base):
        raise field_error(["source"], "resolves outside the data directory")
    if any(part.startswith(".") for part in path.relative_to(base).parts):
        raise field_error(["source"], "names a hidden path (the service's own work folders are not sources)")
    if folder:  # an s3:// data store's folder, brought here (its videos are probed at submit)
        settings.data.mirror(path.relative_to(base).as_posix())
    elif not path.is_file():
        with contextlib.suppress(FileNotFoundError):
            settings.data.path(path.relative_to(base).as_posix())
    if not (path.is_dir() if folder else path.is_file()):
        raise Problem(404, f"source '{source}' is not a {'folder' if folder else 'file'} in the data directory",
                      kind="unknown-source", errors=[{"loc": ["source"], "msg": "not found"}])
    return path
