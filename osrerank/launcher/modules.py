"""What the Maven zips lack, assembled from Maven Central: 2.x modules, and libtorch for DJL.

The 2.x ``integ-test-zip`` holds only ``transport-netty4``. The plugins need ``lang-painless`` (the
connectors' scripts), ``reindex`` (delete-by-query, which ml-commons uses to delete an in-cluster
model's chunks) and ``search-pipeline-common`` (the ``script`` and ``truncate_hits`` processors of the
rank window). Maven Central has each only as a jar + pom, so the module folder is built from the jar
and its runtime dependencies, with the descriptor and policy the module's own build writes.

DJL (inside ml-commons) runs an in-cluster ONNX model with PyTorch as its helper engine and downloads
libtorch + its JNI library from publish.djl.ai on first use, which fails offline. The same files are
on Maven Central: fetched once with the server and linked into the node's DJL cache at every start.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..types import Progress
from .maven import Maven, NotOnMavenCentral

__all__ = [
    "DJL_PLATFORM",
    "MODULES_2X",
    "assemble_missing_modules",
    "fetch_libtorch",
    "link_libtorch",
    "missing_modules",
]

DJL_PLATFORM = "linux-x86_64"


@dataclass(frozen=True)
class Module:
    artifact: str
    classname: str  # the 2.x plugin class
    policy: str | None = None
    extends: str = ""


MODULES_2X = {
    "lang-painless": Module(
        "lang-painless",
        "org.opensearch.painless.PainlessPlugin",
        'grant {\n  permission java.lang.RuntimePermission "createClassLoader";\n'
        '  permission java.lang.RuntimePermission "getClassLoader";\n};\n',
    ),
    "reindex": Module(
        "reindex-client",
        "org.opensearch.index.reindex.ReindexPlugin",
        'grant {\n  permission java.net.SocketPermission "*", "connect";\n};\n',
    ),
    "search-pipeline-common": Module(
        "search-pipeline-common",
        "org.opensearch.search.pipeline.common.SearchPipelineCommonModulePlugin",
        extends="lang-painless",
    ),
}


def missing_modules(server: Path) -> list[str]:
    return [m for m in MODULES_2X if not (server / "modules" / m).exists()]


def assemble_missing_modules(maven: Maven, server: Path, version: str, work: Path, progress: Progress) -> None:
    for name in missing_modules(server):
        progress(f"assembling module {name}")
        _assemble(maven, name, MODULES_2X[name], server, version, work / f"module-{name}")


def _assemble(maven: Maven, name: str, module: Module, server: Path, version: str, work: Path) -> None:
    dest = server / "modules" / name
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>osrerank</groupId><artifactId>{name}-module</artifactId><version>1</version>"
        "<dependencies><dependency><groupId>org.opensearch.plugin</groupId>"
        f"<artifactId>{module.artifact}</artifactId><version>{version}</version>"
        "</dependency></dependencies></project>"
    )
    maven.copy_dependencies(pom, dest, f"org.opensearch.plugin:{module.artifact}:{version} and its dependencies", work)
    for jar in dest.glob("*.jar"):  # the core's own dependencies come along transitively: keep one copy
        if (server / "lib" / jar.name).exists():
            jar.unlink()
    java = "11" if version.startswith("2.") else "21"
    (dest / "plugin-descriptor.properties").write_text(
        f"description={name} module\nversion={version}\nname={name}\nclassname={module.classname}\n"
        f"java.version={java}\nopensearch.version={version}\ncustom.foldername=\n"
        f"extended.plugins={module.extends}\nhas.native.controller=false\n"
    )
    if module.policy:
        (dest / "plugin-security.policy").write_text(module.policy)


def _djl_versions(server: Path) -> tuple[str, str] | None:
    """(DJL version, PyTorch version) of the ml plugin's PyTorch engine, from its jar."""
    for jar in (server / "plugins" / "opensearch-ml").glob("pytorch-engine-*.jar"):
        with zipfile.ZipFile(jar) as z:
            lines = z.read("pytorch-engine.properties").decode().splitlines()
        props = dict(line.split("=", 1) for line in lines if "=" in line)
        return props["djl_version"].strip(), props["pytorch_version"].strip()
    return None


def fetch_libtorch(maven: Maven, server: Path, work: Path, progress: Progress) -> None:
    """libtorch (pytorch-native-cpu) and DJL's JNI bridge (pytorch-jni) into ``<server>/djl-pytorch``.

    Maven Central has no pytorch-jni for every DJL release (none for 0.31.x); the next DJL release
    built for the same PyTorch is used then, which has the same JNI entry points.
    """
    versions = _djl_versions(server)
    if versions is None or platform.machine() != "x86_64":
        return
    djl, torch = versions
    progress(f"fetching libtorch {torch} and DJL's JNI library for the in-cluster target")
    jars = work / "djl"
    maven.copy(f"ai.djl.pytorch:pytorch-native-cpu:{torch}:jar:{DJL_PLATFORM}", jars)
    major, minor = djl.split(".")[:2]
    for candidate in (djl, f"{major}.{int(minor) + 1}.0"):
        try:
            maven.copy(f"ai.djl.pytorch:pytorch-jni:{torch}-{candidate}", jars)
            break
        except NotOnMavenCentral:
            continue
    else:
        progress(f"no pytorch-jni for PyTorch {torch} on Maven Central: the in-cluster target will need internet")
        return
    target = server / "djl-pytorch"
    target.mkdir()
    with zipfile.ZipFile(next(jars.glob("pytorch-native-cpu-*.jar"))) as z:
        for member in z.namelist():
            if member.startswith(f"pytorch/cpu/{DJL_PLATFORM}/") and not member.endswith("/"):
                (target / Path(member).name).write_bytes(z.read(member))
    with zipfile.ZipFile(next(jars.glob("pytorch-jni-*.jar"))) as z:
        (target / f"{djl}-libdjl_torch.so").write_bytes(z.read(f"jnilib/{DJL_PLATFORM}/cpu/libdjl_torch.so"))
    (target / "versions.json").write_text(json.dumps({"djl": djl, "pytorch": torch}))


def link_libtorch(server: Path, data_dir: Path) -> None:
    """Make the fetched libtorch the node's DJL cache entry, where DJL looks before downloading.

    ml-commons (3.x) asks DJL for the precxx11 flavor; 2.19 overrides the version to 1.13.1, which is
    not on Maven Central, so nothing here serves it. Hard links: no 440 MB copy at every start, and
    2.x's Security Manager refuses symlinks."""
    source = server / "djl-pytorch"
    if not (source / "versions.json").exists():
        return
    torch = json.loads((source / "versions.json").read_text())["pytorch"]
    cache = data_dir / "ml_cache" / "pytorch" / f"{torch}-cpu-precxx11-{DJL_PLATFORM}"
    cache.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.name != "versions.json" and not (cache / file.name).exists():
            try:
                os.link(file, cache / file.name)
            except OSError:
                shutil.copy2(file, cache / file.name)
