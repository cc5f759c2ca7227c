"""`openclipart`: Debian's openclipart-png and openclipart-svg as a tagged image source.

Tags are what each image's author wrote in the SVG's <dc:subject>; the creator is the SVG's
<dc:creator>. The image is the PNG at the same path under png/.
"""

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from lablr.core import hookimpl
from lablr.core.errors import LablrError
from lablr.core.parts import PhotoRecord

DC = "{http://purl.org/dc/elements/1.1/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
SVG_METADATA = "{http://www.w3.org/2000/svg}metadata"
INSTALL_HINT = "Install Debian's packages: sudo apt-get install openclipart-png openclipart-svg"
ROOT_ENV = "LABLR_OPENCLIPART_ROOT"  # where the packages are, if not where Debian installs them
DEBIAN_ROOT = "/usr/share/openclipart"
STOP_TAGS = ("unsorted",)


def installed_root() -> Path:
    """Where OpenClipart is installed: $LABLR_OPENCLIPART_ROOT, else Debian's place."""
    return Path(os.environ.get(ROOT_ENV) or DEBIAN_ROOT)


@hookimpl
def register_sources(register):
    register("openclipart", OpenClipartSource)


class OpenClipartSource:
    description = "Debian's OpenClipart packages (tags from each SVG's dc:subject)"
    stop_tags = STOP_TAGS
    needs_location = False  # records() finds the installed packages: a bundle's held-out photos can be read again

    def records(self, location=None):
        root = Path(location) if location else installed_root()
        svg_root, png_root = root / "svg", root / "png"
        if not svg_root.is_dir() or not png_root.is_dir():
            raise LablrError(f"OpenClipart is not installed under {root}. {INSTALL_HINT}, or set {ROOT_ENV} "
                             "to the folder that holds it.")
        for svg in sorted(svg_root.rglob("*.svg")):
            if svg.is_symlink():  # the same image filed in a second category: a duplicate
                continue
            relative = svg.relative_to(svg_root)
            png = png_root / relative.with_suffix(".png")
            if not png.exists():
                continue
            metadata = read_metadata(svg)
            creator = (metadata["creator"] or "").strip().lower()
            # Some authors tag their work with their own name: authorship, not what the image shows.
            metadata["tags"] = [t for t in metadata["tags"] if t.strip().lower() != creator]
            yield PhotoRecord(key=f"openclipart:{relative.with_suffix('').as_posix()}", path=str(png), tags=metadata["tags"],
                              owner=metadata["creator"], license="public domain", title=metadata["title"])


def read_metadata(svg_path):
    """Tags, creator and title from an SVG's RDF metadata; stops reading at </metadata>."""
    found = {"tags": [], "creator": None, "title": None}
    try:
        for _, element in ET.iterparse(svg_path, events=("end",)):
            if element.tag == DC + "subject":
                found["tags"] = [li.text.strip() for li in element.iter(RDF + "li") if li.text and li.text.strip()]
            elif element.tag == DC + "creator":
                found["creator"] = _agent_title(element)
            elif element.tag == DC + "title" and found["title"] is None and element.text:
                found["title"] = element.text.strip()
            elif element.tag == SVG_METADATA:
                break
    except (ET.ParseError, OSError):
        pass  # an SVG with broken metadata is an image without tags
    return found


def _agent_title(element):
    title = element.find(f".//{DC}title")
    return title.text.strip() if title is not None and title.text else None
