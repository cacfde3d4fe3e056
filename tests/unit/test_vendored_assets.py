"""The vendored front-end assets are exactly what scripts/vendor-assets recorded, each with its licence."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "callcenter" / "web" / "static" / "vendor"
TEST_VENDOR = ROOT / "tests" / "browser" / "vendor"
VERSIONS = VENDOR / "VERSIONS.txt"
SCRIPT = ROOT / "scripts" / "vendor-assets"
PACKAGE_LINE = re.compile(
    r"(?P<name>@?[a-z0-9][a-z0-9._/-]*)@(?P<version>\d+\.\d+\.\d+) (?P<integrity>sha512-\S+)"
)
FILE_LINE = re.compile(r"(?P<sha256>[0-9a-f]{64})  (?P<path>\S+)")
#: Which release line each package is held to.
LINES = {
    "htmx.org": "2.0.",
    "htmx-ext-sse": "2.2.",
    "@fontsource/noto-naskh-arabic": "5.",
    "swagger-ui-dist": "5.",
    "axe-core": "4.",
}


@dataclass
class Package:
    name: str
    version: str
    integrity: str
    files: dict[Path, str] = field(default_factory=dict)  # path from the repository root -> sha256


@pytest.fixture(scope="module")
def packages() -> list[Package]:
    assert VERSIONS.is_file(), "run scripts/vendor-assets"
    found: list[Package] = []
    for n, line in enumerate(VERSIONS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if m := FILE_LINE.fullmatch(line):
            assert found, f"VERSIONS.txt:{n}: a file before any package"
            path = Path(m["path"])
            assert not path.is_absolute() and ".." not in path.parts, f"VERSIONS.txt:{n}: {path}"
            found[-1].files[path] = m["sha256"]
        elif m := PACKAGE_LINE.fullmatch(line):
            found.append(Package(m["name"], m["version"], m["integrity"]))
        else:
            pytest.fail(f"VERSIONS.txt:{n}: unreadable line {line!r}")
    return found


def test_the_expected_packages_at_their_release_lines(packages: list[Package]) -> None:
    assert sorted(p.name for p in packages) == sorted(LINES)
    for p in packages:
        assert p.version.startswith(LINES[p.name]), f"{p.name}@{p.version}"
        assert p.files, f"{p.name}: no files"


def test_the_script_pins_what_was_vendored(packages: list[Package]) -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    for p in packages:
        assert f"={p.name}@{p.version}\n" in script, (
            f"scripts/vendor-assets does not pin {p.name}@{p.version}"
        )
        assert f"_INTEGRITY={p.integrity}\n" in script, (
            f"scripts/vendor-assets has another integrity for {p.name}"
        )


def test_every_file_matches_its_recorded_sha256(packages: list[Package]) -> None:
    for p in packages:
        for path, sha256 in p.files.items():
            full = ROOT / path
            assert full.is_file(), f"{path} ({p.name}) is missing"
            assert full.stat().st_size > 0, f"{path} is empty"
            assert hashlib.sha256(full.read_bytes()).hexdigest() == sha256, (
                f"{path} differs from VERSIONS.txt"
            )


def test_every_vendored_file_sits_next_to_its_licence(packages: list[Package]) -> None:
    for p in packages:
        licences = [path for path in p.files if path.name == "LICENSE" or path.name.endswith("-LICENSE")]
        assert licences, f"{p.name}: no licence file vendored"
        for path in p.files:
            assert any(lic.parent == path.parent for lic in licences), (
                f"{path}: no {p.name} licence beside it"
            )
    # each package directory of the served assets has its own LICENSE
    dirs = {
        (ROOT / path).parent for p in packages for path in p.files if (ROOT / path).is_relative_to(VENDOR)
    }
    assert dirs, "nothing vendored under callcenter/web/static/vendor"
    for d in dirs:
        assert d != VENDOR, "vendored files belong in a package directory"
        assert (d / "LICENSE").is_file(), f"{d.relative_to(ROOT)} has no LICENSE"


def test_nothing_unrecorded_in_the_vendor_directories(packages: list[Package]) -> None:
    recorded = {ROOT / path for p in packages for path in p.files} | {VERSIONS}
    present = {f for d in (VENDOR, TEST_VENDOR) if d.is_dir() for f in d.rglob("*") if f.is_file()}
    assert sorted(str(f.relative_to(ROOT)) for f in present - recorded) == []


def test_the_font_css_points_at_vendored_woff2_files(packages: list[Package]) -> None:
    css_path = VENDOR / "fonts" / "noto-naskh-arabic" / "font.css"
    css = css_path.read_text(encoding="utf-8")
    urls = re.findall(r'url\("([^"]+)"\)', css)
    assert len(urls) == 4 and css.count("@font-face") == 4  # arabic and latin, 400 and 700
    recorded = {ROOT / path for p in packages for path in p.files}
    for url in urls:
        assert "/" not in url and url.endswith(".woff2"), url
        assert css_path.parent / url in recorded, url
        assert (css_path.parent / url).read_bytes()[:4] == b"wOF2", url
    assert css.count("font-display: swap;") == 4 and css.count("unicode-range:") == 4
    assert "http" not in css and "@import" not in css
