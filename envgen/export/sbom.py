"""A CycloneDX SBOM of an env, from its lock: every PyPI package and every .deb.

Deterministic: the serial number is a UUID5 of the tree digest, the timestamp is
the snapshot date, bom-refs are the purls, and the JSON is re-serialised with
envgen's canonical serializer.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import warnings

from ..fsutil import canonical_json
from ..lock.pylock import Lock

NAMESPACE = uuid.UUID("6f1f3c52-5d0b-4a55-9d1e-7e6c0d1a9e11")  # envgen's, fixed


def make_sbom(lock: Lock, tree_digest: str | None, snapshot_id: str, name: str, version: str = "") -> bytes:
    """The SBOM of the env of *lock*; *tree_digest* None when no tree is known (a bundle without one)."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentScope, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    comps = []
    for p in sorted(lock.packages, key=lambda p: p.name):
        purl = PackageURL(type="pypi", name=p.name, version=p.version)
        refs, hashes, props = [], [], []
        for w in sorted(p.wheels, key=lambda w: w.filename):
            h = HashType(alg=HashAlgorithm.SHA_256, content=w.sha256)
            refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(w.url), hashes=[h]))
        if len(p.wheels) == 1:
            hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=p.wheels[0].sha256))
        if p.sdist is not None:
            h = HashType(alg=HashAlgorithm.SHA_256, content=p.sdist.sha256)
            refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(p.sdist.url), hashes=[h]))
        if p.is_local:
            props.append(Property(name="envgen:local-project", value=p.directory))
        if p.vcs is not None:  # the commit, and the sha256 of the source pack envgen builds it from
            build = lock.source_build(p.name)
            pack = [HashType(alg=HashAlgorithm.SHA_256, content=build.source_sha256)] \
                if build is not None and build.source_sha256 else []
            refs.append(ExternalReference(type=ExternalReferenceType.VCS,
                                          url=XsUri(f"git+{p.vcs.url}@{p.vcs.commit_id}"), hashes=pack))
            props.append(Property(name="envgen:vcs-commit", value=p.vcs.commit_id))
        comps.append(Component(name=p.name, version=p.version, type=ComponentType.LIBRARY, purl=purl,
                               bom_ref=purl.to_string(), hashes=hashes, external_references=refs, properties=props))
    deb_arch = lock.debian.architecture
    for d in sorted(lock.debian.packages, key=lambda d: (d.name, d.version)):
        purl = PackageURL(type="deb", namespace="debian", name=d.name, version=d.version,
                          qualifiers={"arch": d.architecture or deb_arch, "distro": lock.debian.base.replace("/", "-")})
        h = HashType(alg=HashAlgorithm.SHA_256, content=d.sha256)
        comps.append(Component(
            name=d.name, version=d.version, type=ComponentType.LIBRARY, purl=purl, bom_ref=purl.to_string(),
            hashes=[h], scope=ComponentScope.REQUIRED if d.role == "runtime" else ComponentScope.EXCLUDED,
            external_references=[ExternalReference(type=ExternalReferenceType.DISTRIBUTION,
                                                   url=XsUri(d.snapshot_url or d.url), hashes=[h])],
            properties=[Property(name="envgen:deb-role", value=d.role)]))
    root = Component(name=name, version=version or snapshot_id[:12], type=ComponentType.CONTAINER,
                     bom_ref=f"envgen:{name}@{snapshot_id}",
                     properties=[Property(name="envgen:snapshot-id", value=snapshot_id),
                                 *([Property(name="envgen:tree-digest", value=tree_digest)] if tree_digest else [])])
    when = lock.snapshot_date.astimezone(dt.UTC)
    bom = Bom(components=comps, serial_number=uuid.uuid5(NAMESPACE, tree_digest or snapshot_id),
              metadata=BomMetaData(component=root, timestamp=when))
    bom.register_dependency(root, comps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = JsonV1Dot6(bom).output_as_string()
    return canonical_json(json.loads(text))
