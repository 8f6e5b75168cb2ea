"""The release dossier: build it from a release, write it as JSON, Markdown or HTML, verify it."""

from gatekeeper.dossier.collect import collect_dossier
from gatekeeper.dossier.model import DOSSIER_FORMAT, Dossier, build_dossier
from gatekeeper.dossier.render import DossierFormat, render
from gatekeeper.dossier.verify import Verification, verify_file, verify_text

__all__ = [
    "DOSSIER_FORMAT",
    "Dossier",
    "DossierFormat",
    "Verification",
    "build_dossier",
    "collect_dossier",
    "render",
    "verify_file",
    "verify_text",
]
