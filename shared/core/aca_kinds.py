"""The manifest kinds an `aca` Target reads, each with its reader (one line per kind)."""
from __future__ import annotations

from typing import Mapping

from shared.core.container_app_job import read_job
from shared.core.dapr_component import read_component
from shared.core.manifests import APP_READERS, Reader
from shared.core.projects import read_project

ACA_READERS: Mapping[str, Reader] = {
    **APP_READERS,
    "Job": read_job,
    "DaprComponent": read_component,
    "Project": read_project,
}
"""kind -> reader, for every document under an aca Target's path."""
