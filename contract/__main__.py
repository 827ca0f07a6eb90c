"""Print the manifest's JSON schema: python -m contract > docs/manifest.schema.json"""

from __future__ import annotations

from contract.manifest import schema_text

print(schema_text(), end="")
