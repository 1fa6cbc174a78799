"""What the lab kubelet set up per pod, on disk: `<lab>/pods/<netns>-<pod>.json`.

A record (namespace, name, uid, node, netns, hostNetwork, ips) is written before the
pod's netns exists and removed after it is gone, so a restarted kubelet can adopt what
still runs and undo what belongs to pods deleted meanwhile.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class PodRecords:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, rec: dict[str, Any]) -> None:
        tmp = self.dir / f".{rec['netns']}-{rec['name']}.tmp"
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.dir / f"{rec['netns']}-{rec['name']}.json")

    def read(self, netns: str) -> dict[str, Any] | None:
        for f in self.dir.glob(f"{netns}-*.json"):
            try:
                return json.loads(f.read_text())
            except (OSError, ValueError):
                return None
        return None

    def remove(self, netns: str) -> None:
        for f in self.dir.glob(f"{netns}-*.json"):
            f.unlink(missing_ok=True)

    def all(self) -> list[dict[str, Any]]:
        out = []
        for f in sorted(self.dir.glob("*.json")):
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                continue
        return out
